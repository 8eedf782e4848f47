// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @notice Whether `signer` signed `digest`: an ECDSA signature by an account's key, or an
/// ERC-1271 contract account's approval. Returns the recovered key too, for error reports.
/// @dev OpenZeppelin's SignatureChecker reaches Bytes.sol (mcopy) since 5.4, which the London
/// set cannot use; this is its ERC-1271 branch, reduced to what the contracts need.
function validSignature(address signer, bytes32 digest, bytes memory signature)
    view
    returns (bool valid, address recovered)
{
    (recovered,,) = ECDSA.tryRecover(digest, signature);
    if (signer.code.length == 0) return (signer != address(0) && recovered == signer, recovered);
    (bool ok, bytes memory result) =
        signer.staticcall(abi.encodeCall(IERC1271.isValidSignature, (digest, signature)));
    valid = ok && result.length >= 32 && abi.decode(result, (bytes32)) == bytes32(IERC1271.isValidSignature.selector);
}

/// @title EnergyToken: 1 unit = 1 Wh measured into a producer's battery (1 token = 1 kWh).
/// @notice Minted only from readings a producer meter signed with its own key; burned only by
/// the escrow as energy is delivered. The meter registry lives here too: a meter is enrolled
/// only with its owner's signed consent and a rated power the token's maximum bounds.
/// @dev A reading mints at most the meter's rated power over the time since its last minted
/// reading, that time taken from the readings' own signed timestamps (never after the block's)
/// and capped at MINT_WINDOW_S: an idle month buys no burst. Signed times alone can be
/// back-dated, so each mint also draws on an allowance that refills at the rated power per
/// second of BLOCK time, up to one window's worth. Counter growth above either cap is not
/// lost, it is minted by later readings as their time allows. An enrollment's first reading
/// only sets the meter's baseline: a counter from before enrollment is never minted.
contract EnergyToken is ERC20, ERC20Permit, AccessControl {
    /// @notice Role of the escrow contract, which burns delivered energy.
    bytes32 public constant ESCROW_ROLE = keccak256("ESCROW_ROLE");
    /// @notice Role of the interval settlement, which nets a seller's mint and sold Wh.
    bytes32 public constant SETTLEMENT_ROLE = keccak256("SETTLEMENT_ROLE");
    /// @notice The longest time one reading may mint for (seconds since the meter's last one).
    uint64 public constant MINT_WINDOW_S = 3600;
    /// @notice EIP-712 type of a meter's signed cumulative reading.
    bytes32 public constant READING_TYPEHASH =
        keccak256("Reading(address meter,uint256 whIn,uint256 whOut,uint64 timestamp)");
    /// @notice EIP-712 type of an owner's consent to have a meter enrolled as theirs.
    bytes32 public constant CONSENT_TYPEHASH =
        keccak256("MeterConsent(address meter,address owner,uint8 kind,uint32 ratedPowerW,uint64 deadline)");

    /// @notice Why mintReadings skipped a reading (ReadingRefused's reason).
    uint8 public constant NOT_PRODUCER = 1;
    uint8 public constant BAD_SIGNATURE = 2;
    uint8 public constant FROM_THE_FUTURE = 3;
    uint8 public constant STALE = 4;
    uint8 public constant WENT_BACKWARDS = 5;
    uint8 public constant OUT_OF_RANGE = 6;
    /// @notice Why settleReading refused a seller (besides the reasons above).
    uint8 public constant NO_TOKENS = 7;

    enum MeterKind { None, Producer, Consumer }

    /// @notice A meter's cumulative counters at a time, as its key signs them.
    struct Reading {
        address meter;
        uint256 whIn;
        uint256 whOut;
        uint64 timestamp;
    }

    /// @dev Two slots: the registry entry with the block-time allowance, and the last minted
    /// reading. `owner` stays set after disenrollMeter: the meter is bound to that owner until
    /// it releases it. The allowance is kept as the (virtual) millisecond from which the meter
    /// has accrued rated power: allowance(now) = rated × min(now − allowanceFromMs, window),
    /// and minting wh moves allowanceFromMs forward by the time wh takes at rated power.
    /// Readings above 2^192 Wh are refused, so lastReadingWh never overflows.
    struct Meter {
        address owner;
        MeterKind kind;
        uint32 ratedPowerW;
        bool baselinePending;
        uint48 allowanceFromMs;
        uint192 lastReadingWh;
        uint64 lastReadingAt;
    }

    uint256 private constant MS_PER_HOUR = 3_600_000;
    uint256 private constant MS_WINDOW = uint256(MINT_WINDOW_S) * 1000;

    uint32 private immutable _maxRatedPowerW;
    mapping(address meter => Meter) private _meters;
    mapping(bytes32 consent => bool) private _consentUsed;

    /// @notice Enrollment needs a meter, an owner, a kind and a rated power within the maximum.
    error InvalidEnrollment(address meter);
    /// @notice The owner's consent is past its deadline.
    error ConsentExpired(uint64 deadline);
    /// @notice The consent was not signed by the owner it names.
    error InvalidConsent(address owner, address signer);
    /// @notice The meter is bound to another owner (enrolled, or disenrolled and not yet
    /// released): that owner must releaseMeter first.
    error MeterTaken(address meter, address owner);
    /// @notice This consent already enrolled the meter once; a new enrollment needs a new one.
    error ConsentUsed(bytes32 consent);
    /// @notice Only the owner a meter is bound to may release it.
    error NotMeterOwner(address meter, address caller);
    /// @notice The meter is not enrolled.
    error MeterNotEnrolled(address meter);
    /// @notice mintReadings got a different number of readings and signatures.
    error LengthMismatch();

    /// @notice A meter was enrolled (or re-enrolled) for an owner.
    event MeterEnrolled(address indexed meter, address indexed owner, MeterKind kind, uint32 ratedPowerW);
    /// @notice A meter was removed from the registry (its owner stays bound until it releases it).
    event MeterDisenrolled(address indexed meter);
    /// @notice The owner a meter was bound to released it: it may be enrolled for another owner.
    event MeterReleased(address indexed meter, address indexed owner);
    /// @notice An enrollment's first reading set the meter's counter; it minted nothing.
    event MeterBaseline(address indexed meter, uint256 readingWh, uint64 readingAt);
    /// @notice A producer meter's signed reading minted `wh` to its owner; mintedTotalWh is the
    /// meter's minted counter now, readingWh and readingAt what the reading said.
    event EnergyMinted(
        address indexed meter,
        address indexed owner,
        uint256 wh,
        uint256 mintedTotalWh,
        uint256 readingWh,
        uint64 readingAt
    );
    /// @notice mintReadings skipped a reading (reason: NOT_PRODUCER ... OUT_OF_RANGE).
    event ReadingRefused(address indexed meter, uint8 reason, uint64 readingAt);

    /// @param admin the account given the admin role (the market operator)
    /// @param maxRatedPower the highest rated power a meter may be enrolled with, in W
    constructor(address admin, uint32 maxRatedPower) ERC20("gridbid Energy", "GEN") ERC20Permit("gridbid Energy") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _maxRatedPowerW = maxRatedPower;
    }

    /// @notice Token units are Wh; 3 decimals make one whole token a kWh.
    function decimals() public pure override returns (uint8) {
        return 3;
    }

    /// @notice The highest rated power enrollMeter accepts, in W (fixed at deploy).
    function maxRatedPowerW() external view returns (uint32) {
        return _maxRatedPowerW;
    }

    /// @notice Enroll a meter for its owner, who consented by signing a MeterConsent of
    /// exactly these terms (EIP-712, this token's domain; a contract owner by ERC-1271). Each
    /// consent enrolls once. A meter bound to another owner needs that owner's releaseMeter.
    function enrollMeter(
        address meter,
        address owner,
        MeterKind kind,
        uint32 ratedPowerW,
        uint64 deadline,
        bytes calldata consent
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (
            meter == address(0) || owner == address(0) || kind == MeterKind.None || ratedPowerW == 0
                || ratedPowerW > _maxRatedPowerW
        ) revert InvalidEnrollment(meter);
        if (deadline < block.timestamp) revert ConsentExpired(deadline);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(CONSENT_TYPEHASH, meter, owner, uint8(kind), ratedPowerW, deadline))
        );
        if (_consentUsed[digest]) revert ConsentUsed(digest);
        (bool valid, address signer) = validSignature(owner, digest, consent);
        if (!valid) revert InvalidConsent(owner, signer);
        Meter storage m = _meters[meter];
        if (m.owner != address(0) && m.owner != owner) revert MeterTaken(meter, m.owner);
        _consentUsed[digest] = true;
        // Only a producer re-enrolled for the same owner while enrolled (a new rating) keeps
        // minting from its counter; otherwise the next reading sets a fresh baseline, so what
        // the meter counted before (or while suspended, or for someone else) never mints.
        if (m.kind != MeterKind.Producer || kind != MeterKind.Producer || m.owner != owner) {
            m.baselinePending = true;
            m.lastReadingAt = uint64(block.timestamp);
        }
        m.owner = owner;
        m.kind = kind;
        m.ratedPowerW = ratedPowerW;
        // The block-time allowance starts empty at every enrollment.
        m.allowanceFromMs = uint48(block.timestamp * 1000);
        emit MeterEnrolled(meter, owner, kind, ratedPowerW);
    }

    /// @notice Suspend a meter; its readings mint and settle no more. Its owner stays bound:
    /// only that owner's releaseMeter lets it be enrolled for someone else.
    function disenrollMeter(address meter) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Meter storage m = _meters[meter];
        if (m.kind == MeterKind.None) revert MeterNotEnrolled(meter);
        m.kind = MeterKind.None;
        m.ratedPowerW = 0;
        emit MeterDisenrolled(meter);
    }

    /// @notice The owner a meter is bound to gives it up (disenrolling it if enrolled), so it
    /// may be enrolled for another owner.
    function releaseMeter(address meter) external {
        Meter storage m = _meters[meter];
        if (m.owner == address(0) || m.owner != msg.sender) revert NotMeterOwner(meter, msg.sender);
        if (m.kind != MeterKind.None) {
            m.kind = MeterKind.None;
            m.ratedPowerW = 0;
            emit MeterDisenrolled(meter);
        }
        m.owner = address(0);
        emit MeterReleased(meter, msg.sender);
    }

    /// @notice The owner a meter is bound to (enrolled, or disenrolled and not released), else 0.
    function boundOwnerOf(address meter) external view returns (address) {
        return _meters[meter].owner;
    }

    /// @notice Whether the meter's next accepted reading only sets its baseline (mints nothing).
    function baselinePending(address meter) external view returns (bool) {
        return _meters[meter].baselinePending;
    }

    /// @notice Whether a MeterConsent (by its EIP-712 digest) already enrolled a meter.
    function consentUsed(bytes32 consent) external view returns (bool) {
        return _consentUsed[consent];
    }

    /// @notice A meter's registry entry (kind None when not enrolled).
    function meterOf(address meter)
        external
        view
        returns (address owner, MeterKind kind, uint32 ratedPowerW, uint256 lastReadingWh, uint64 lastReadingAt)
    {
        Meter storage m = _meters[meter];
        owner = m.kind == MeterKind.None ? address(0) : m.owner;
        return (owner, m.kind, m.ratedPowerW, m.lastReadingWh, m.lastReadingAt);
    }

    /// @notice The most Wh a producer meter's reading taken at `time` may mint if sent now:
    /// rated power × min(time − last reading's time, MINT_WINDOW_S), and at most the
    /// block-time allowance (mintAllowanceWh); 0 while its baseline is pending.
    function mintableWh(address meter, uint64 time) public view returns (uint256) {
        Meter storage m = _meters[meter];
        if (m.kind != MeterKind.Producer || m.baselinePending || time <= m.lastReadingAt) return 0;
        uint256 elapsed = time - m.lastReadingAt;
        if (elapsed > MINT_WINDOW_S) elapsed = MINT_WINDOW_S;
        uint256 signedCap = uint256(m.ratedPowerW) * elapsed / 3600;
        (uint256 allowance,) = _allowance(m);
        return signedCap < allowance ? signedCap : allowance;
    }

    /// @notice What a producer meter's block-time allowance holds now, in Wh: rated power ×
    /// the block seconds since it was last drawn on, at most one MINT_WINDOW_S's worth.
    function mintAllowanceWh(address meter) external view returns (uint256 wh) {
        Meter storage m = _meters[meter];
        if (m.kind != MeterKind.Producer) return 0;
        (wh,) = _allowance(m);
    }

    /// @dev The allowance now in Wh, and its accrual start clamped to at most one window ago.
    function _allowance(Meter storage m) private view returns (uint256 wh, uint256 fromMs) {
        uint256 nowMs = block.timestamp * 1000;
        fromMs = m.allowanceFromMs;
        if (nowMs - fromMs > MS_WINDOW) fromMs = nowMs - MS_WINDOW;
        wh = uint256(m.ratedPowerW) * (nowMs - fromMs) / MS_PER_HOUR;
    }

    /// @notice The EIP-712 digest a meter signs for a reading (this token's domain).
    function hashReading(Reading calldata reading) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(READING_TYPEHASH, reading))
        );
    }

    /// @notice The key that signed a reading, address(0) when it cannot be recovered.
    function readingSigner(Reading calldata reading, bytes calldata signature) public view returns (address) {
        (address signer, ECDSA.RecoverError failure,) = ECDSA.tryRecover(hashReading(reading), signature);
        return failure == ECDSA.RecoverError.NoError ? signer : address(0);
    }

    /// @notice Mint from producer meters' signed readings; anyone may send them, since each
    /// reading carries its meter's signature. A reading that cannot mint is skipped with
    /// ReadingRefused and the others still mint.
    function mintReadings(Reading[] calldata readings, bytes[] calldata signatures) external {
        if (readings.length != signatures.length) revert LengthMismatch();
        for (uint256 i = 0; i < readings.length; ++i) {
            _mintReading(readings[i], signatures[i]);
        }
    }

    function _mintReading(Reading calldata r, bytes calldata signature) private {
        Meter storage m = _meters[r.meter];
        uint8 refused = _refusal(m, r, signature);
        if (refused != 0) {
            emit ReadingRefused(r.meter, refused, r.timestamp);
            return;
        }
        uint256 wh = _apply(m, r);
        if (wh > 0) _mint(m.owner, wh);
    }

    /// @dev Why a reading cannot mint (0: it can): the checks mintReadings and settleReading share.
    function _refusal(Meter storage m, Reading calldata r, bytes calldata signature) private view returns (uint8) {
        if (m.kind != MeterKind.Producer) return NOT_PRODUCER;
        if (readingSigner(r, signature) != r.meter) return BAD_SIGNATURE;
        if (r.timestamp > block.timestamp) return FROM_THE_FUTURE;
        if (r.timestamp <= m.lastReadingAt) return STALE;
        if (r.whIn < m.lastReadingWh) return WENT_BACKWARDS;
        if (r.whIn > type(uint192).max) return OUT_OF_RANGE;
        return 0;
    }

    /// @dev Take an accepted reading: a pending baseline sets the counter, else it mints what
    /// the caps allow (returned; the caller mints it) and moves the counter on.
    function _apply(Meter storage m, Reading calldata r) private returns (uint256 wh) {
        if (m.baselinePending) {
            m.baselinePending = false;
            m.lastReadingWh = uint192(r.whIn);
            m.lastReadingAt = r.timestamp;
            emit MeterBaseline(r.meter, r.whIn, r.timestamp);
            return 0;
        }
        wh = _draw(m, r);
        uint192 total = m.lastReadingWh + uint192(wh);
        m.lastReadingWh = total;
        m.lastReadingAt = r.timestamp;
        emit EnergyMinted(r.meter, m.owner, wh, total, r.whIn, r.timestamp);
    }

    /// @notice The interval settlement settles a seller: its producer meter's signed reading
    /// mints as in mintReadings (same caps; a reading already minted or older mints nothing
    /// but still counts), and burnWh it sold are burned, netted into one mint or burn.
    /// @return refused 0, or why nothing was burned: NOT_PRODUCER (not `owner`'s producer
    /// meter), BAD_SIGNATURE, FROM_THE_FUTURE, OUT_OF_RANGE, NO_TOKENS (the balance and the
    /// mint do not cover burnWh; the mint still happens)
    function settleReading(address owner, Reading calldata r, bytes calldata signature, uint256 burnWh)
        external
        onlyRole(SETTLEMENT_ROLE)
        returns (uint8 refused)
    {
        Meter storage m = _meters[r.meter];
        if (m.owner != owner) return NOT_PRODUCER;
        refused = _refusal(m, r, signature);
        if (refused != 0 && refused != STALE && refused != WENT_BACKWARDS) return refused;
        uint256 minted = refused == 0 ? _apply(m, r) : 0;
        refused = 0;
        if (balanceOf(owner) + minted < burnWh) {
            refused = NO_TOKENS;
            burnWh = 0;
        }
        if (minted > burnWh) _mint(owner, minted - burnWh);
        else if (burnWh > minted) _burn(owner, burnWh - minted);
    }

    /// @notice A meter's owner and kind (None when not enrolled): one slot, for settlement.
    function enrolledAs(address meter) external view returns (address owner, MeterKind kind) {
        Meter storage m = _meters[meter];
        kind = m.kind;
        owner = kind == MeterKind.None ? address(0) : m.owner;
    }

    /// @dev What a reading mints: its growth, clamped to rated power over its signed time
    /// since the last reading and to the block-time allowance, which it draws on.
    function _draw(Meter storage m, Reading calldata r) private returns (uint256 wh) {
        wh = r.whIn - m.lastReadingWh;
        uint256 elapsed = r.timestamp - m.lastReadingAt;
        if (elapsed > MINT_WINDOW_S) elapsed = MINT_WINDOW_S;
        uint256 rated = m.ratedPowerW;
        uint256 cap = rated * elapsed / 3600;
        (uint256 allowance, uint256 fromMs) = _allowance(m);
        if (allowance < cap) cap = allowance;
        // Over the cap: clamped; the rest stays above lastReadingWh for later readings.
        if (wh > cap) wh = cap;
        // Rounded up, so the allowance never gives more than rated power over block time.
        if (wh > 0) m.allowanceFromMs = uint48(fromMs + (wh * MS_PER_HOUR + rated - 1) / rated);
    }

    /// @notice The escrow burns delivered energy from its own balance.
    function burn(uint256 wh) external onlyRole(ESCROW_ROLE) {
        _burn(msg.sender, wh);
    }
}
