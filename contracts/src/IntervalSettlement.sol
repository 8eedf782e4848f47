// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EnergyToken, validSignature} from "./EnergyToken.sol";
import {EnergyEscrow} from "./EnergyEscrow.sol";

/// @title IntervalSettlement: batched settlement of the community market's netted positions.
/// @notice The community market clears every interval off-chain from standing orders its
/// participants signed; a participant's position over one or more intervals settles here,
/// with its order and its meter's cumulative signed reading. Each position is checked against
/// what its owner signed and what its meter counted; a position that fails is skipped
/// (PositionRefused), never the batch. Buyers pay from their COMMUNITY escrow balance into the
/// escrow's settlement pool, sellers are credited from it (withdrawOwed) and their tokens are
/// netted: the reading's mint less the Wh sold. The operator sends batches at any time; anyone
/// may send one the operator signed once anyoneAfterS of block time passed since its readings.
contract IntervalSettlement is AccessControl, ReentrancyGuard, EIP712 {
    /// @notice Role of the market operator, which sends (or signs) batches.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice EIP-712 type of a seller's standing order.
    bytes32 public constant SELL_ORDER_TYPEHASH = keccak256(
        "SellOrder(address seller,address meter,uint256 floorWeiPerKWh,uint64 maxWhPerInterval,uint64 reserveWh,uint64 expiry,uint64 nonce)"
    );
    /// @notice EIP-712 type of a buyer's standing order.
    bytes32 public constant BUY_ORDER_TYPEHASH = keccak256(
        "BuyOrder(address buyer,address meter,uint256 capWeiPerKWh,uint64 maxWhPerInterval,uint64 expectedWh,uint256 dailyBudgetWei,uint64 expiry,uint64 nonce)"
    );
    /// @notice EIP-712 type of the operator's approval of a batch anyone may send.
    bytes32 public constant BATCH_TYPEHASH = keccak256("Batch(uint32 throughInterval,bytes32 positionsHash)");
    /// @dev EnergyToken's reading type: readings are signed in the token's domain.
    bytes32 private constant READING_TYPEHASH =
        keccak256("Reading(address meter,uint256 whIn,uint256 whOut,uint64 timestamp)");

    /// @notice A position's side (PositionSettled, PositionRefused).
    uint8 public constant BUY = 1;
    uint8 public constant SELL = 2;

    /// @notice Why a position was skipped (PositionRefused's reason).
    uint8 public constant BAD_INTERVALS = 1; // from > to, to > throughInterval, filled > span, a buy over two days
    uint8 public constant NOT_AFTER_LAST = 2; // not strictly after the account's last settled interval
    uint8 public constant OVER_INTERVAL_CAP = 3; // wh > maxWhPerInterval * filledIntervals
    uint8 public constant PRICE = 4; // above the buyer's cap, below the seller's floor less the max line loss
    uint8 public constant OVER_DAILY_BUDGET = 5; // the buyer's day spend would pass its budget
    uint8 public constant EXPIRED = 6; // closing reading later than the order's expiry + one interval
    uint8 public constant BAD_ORDER_SIGNATURE = 7; // the order is not signed by its owner
    uint8 public constant CANCELLED = 8; // closing reading later than the owner's cancel + two intervals
    uint8 public constant WRONG_METER = 9; // the order's meter is not the owner's, of this side's kind
    uint8 public constant BAD_READING = 10; // another meter's, not signed by the meter, or out of range
    uint8 public constant READING_OUT_OF_TIME = 11; // from the future, not newer than the last, old baseline
    uint8 public constant NO_BASELINE = 12; // the account's first position carries no baseline reading
    uint8 public constant OVER_METERED = 13; // more Wh than the meter counted since the last settled reading
    uint8 public constant INSUFFICIENT_FUNDS = 14; // the buyer's COMMUNITY balance does not cover it
    uint8 public constant POOL_SHORT = 15; // the pool cannot pay this sell yet (retry later)
    uint8 public constant NO_TOKENS = 16; // the seller holds fewer tokens than it sold, its mint included

    /// @notice A seller's standing order, signed by the seller (EIP-712, this contract's domain).
    struct SellOrder {
        address seller;
        address meter;
        uint256 floorWeiPerKWh;
        uint64 maxWhPerInterval;
        uint64 reserveWh;
        uint64 expiry;
        uint64 nonce;
    }

    /// @notice A buyer's standing order, signed by the buyer (EIP-712, this contract's domain).
    struct BuyOrder {
        address buyer;
        address meter;
        uint256 capWeiPerKWh;
        uint64 maxWhPerInterval;
        uint64 expectedWh;
        uint256 dailyBudgetWei;
        uint64 expiry;
        uint64 nonce;
    }

    /// @notice What a position claims: intervals fromInterval..toInterval (filledIntervals of
    /// them with a fill), wh bought or sold, amountWei paid or received.
    struct Fill {
        uint32 fromInterval;
        uint32 toInterval;
        uint32 filledIntervals;
        uint64 wh;
        uint256 amountWei;
    }

    /// @notice A buyer's position. orderSig may be empty once the order settled a position;
    /// baselineSig empty means no baseline (required on the account's first position).
    struct BuyPosition {
        BuyOrder order;
        bytes orderSig;
        EnergyToken.Reading closing;
        bytes closingSig;
        EnergyToken.Reading baseline;
        bytes baselineSig;
        Fill fill;
    }

    /// @notice A seller's position (as BuyPosition).
    struct SellPosition {
        SellOrder order;
        bytes orderSig;
        EnergyToken.Reading closing;
        bytes closingSig;
        EnergyToken.Reading baseline;
        bytes baselineSig;
        Fill fill;
    }

    /// @notice One settlement: positions up to throughInterval, lot sellers' mint readings,
    /// and the operator's signature (empty when the operator sends it).
    struct Batch {
        uint32 throughInterval;
        BuyPosition[] buys;
        SellPosition[] sells;
        EnergyToken.Reading[] mints;
        bytes[] mintSigs;
        bytes operatorSig;
    }

    /// @dev An account's settled state per meter, in one slot: the last settled interval and
    /// reading (its time and the meter's counter: whIn for a buyer, whOut for a seller), and
    /// a buyer's spend on the day of its last position.
    struct Account {
        uint32 lastInterval;
        uint40 lastAt;
        uint64 lastWh;
        uint24 day;
        uint96 daySpent;
    }

    /// @dev An order's state, in one slot: its owner once known; flags VERIFIED (its signature
    /// was checked) and CANCELLED_STATE, and the block time of the owner's cancel.
    struct OrderState {
        address owner;
        uint8 state;
        uint64 cancelledAt;
    }

    uint256 private constant BPS = 10_000;
    uint8 private constant VERIFIED = 1;
    uint8 private constant CANCELLED_STATE = 2;
    /// @dev EnergyToken.settleReading's refusals this contract tells apart (same numbers).
    uint8 private constant TOKEN_NOT_PRODUCER = 1;
    uint8 private constant TOKEN_FROM_THE_FUTURE = 3;
    uint8 private constant TOKEN_NO_TOKENS = 7;

    EnergyToken private immutable _token;
    EnergyEscrow private immutable _escrow;
    uint64 private immutable _anyoneAfter;
    uint32 private immutable _intervalSeconds;
    uint32 private immutable _intervalWallSeconds;
    uint16 private immutable _maxLineLossBps;
    bytes32 private immutable _tokenDomain;
    uint256 private immutable _tokenChainId;

    mapping(address account => mapping(address meter => Account)) private _accounts;
    mapping(bytes32 order => OrderState) private _orders;

    /// @notice The batch's operator signature is not an operator's.
    error InvalidOperatorSignature(address signer);
    /// @notice A batch not sent by the operator before anyoneAfterS passed since a reading.
    error SettlementWindowNotOpen(uint64 opensAt);
    /// @notice mints and mintSigs differ in length.
    error LengthMismatch();
    /// @notice Only an order's owner cancels it.
    error NotOrderOwner(address caller);
    /// @notice The order is cancelled already.
    error OrderAlreadyCancelled(bytes32 order);
    /// @notice intervalSeconds and intervalWallSeconds must be positive.
    error InvalidInterval();
    /// @notice The maximum line loss must be below 10,000 basis points.
    error InvalidLineLoss();

    /// @notice A position settled: the buyer paid (side BUY) or the seller was credited (SELL)
    /// amountWei for wh over the intervals; meterWh is its meter's counter it settled to.
    event PositionSettled(
        address indexed account,
        uint8 side,
        uint32 fromInterval,
        uint32 toInterval,
        uint256 wh,
        uint256 amountWei,
        uint256 meterWh
    );
    /// @notice A batch settled `buys` and `sells` positions; poolWei is what the pool holds after.
    event BatchSettled(uint32 throughInterval, uint256 buys, uint256 sells, uint256 poolWei);
    /// @notice An order's owner cancelled it: it settles no position after.
    event OrderCancelled(bytes32 indexed order, address indexed owner);
    /// @notice A position was skipped for `reason` (BAD_INTERVALS ... NO_TOKENS); it may be retried.
    event PositionRefused(address indexed account, uint8 side, uint8 reason);

    /// @param token the energy token (meter registry, readings' domain, mints and burns)
    /// @param escrow the escrow whose COMMUNITY balances pay and whose owed pays out
    /// @param admin the account given the admin and operator roles
    /// @param anyoneAfterS block seconds after a batch's readings from which anyone may send it
    /// @param intervalSeconds an interval's length in (emulated) market seconds: day = interval
    /// × intervalSeconds / 86400
    /// @param intervalWallSeconds an interval's length in block seconds (rounded up): the
    /// grace after an order's expiry, and how old a baseline may be per interval it covers
    /// @param maxLineLossBps the most line loss (basis points) sellers bear: a sell of wh
    /// may be paid down to floor × wh × (1 − maxLineLossBps / 10,000) / 1000
    constructor(
        EnergyToken token,
        EnergyEscrow escrow,
        address admin,
        uint64 anyoneAfterS,
        uint32 intervalSeconds,
        uint32 intervalWallSeconds,
        uint16 maxLineLossBps
    ) EIP712("gridbid IntervalSettlement", "1") {
        if (intervalSeconds == 0 || intervalWallSeconds == 0) revert InvalidInterval();
        if (maxLineLossBps >= BPS) revert InvalidLineLoss();
        _maxLineLossBps = maxLineLossBps;
        _token = token;
        _escrow = escrow;
        _anyoneAfter = anyoneAfterS;
        _intervalSeconds = intervalSeconds;
        _intervalWallSeconds = intervalWallSeconds;
        _tokenDomain = token.DOMAIN_SEPARATOR();
        _tokenChainId = block.chainid;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    // -- settling -----------------------------------------------------------------------------

    /// @notice Settle a batch: buys first (charged into the pool), then sells (credited from
    /// it), then lot sellers' mint readings. The operator sends it with an empty operatorSig;
    /// anyone else needs the operator's Batch signature and anyoneAfterS past every reading.
    function settle(Batch calldata b) external nonReentrant {
        bool byOperator = hasRole(OPERATOR_ROLE, msg.sender);
        if (!byOperator) _checkOperatorSig(b);
        uint256 pool = _escrow.settlementPool();
        uint256 buys;
        uint256 sells;
        for (uint256 i = 0; i < b.buys.length; ++i) {
            BuyPosition calldata p = b.buys[i];
            if (!byOperator) _checkWindow(p.closing.timestamp);
            uint8 reason = _settleBuy(p, b.throughInterval);
            if (reason == 0) {
                pool += p.fill.amountWei;
                ++buys;
            } else {
                emit PositionRefused(p.order.buyer, BUY, reason);
            }
        }
        for (uint256 i = 0; i < b.sells.length; ++i) {
            SellPosition calldata p = b.sells[i];
            if (!byOperator) _checkWindow(p.closing.timestamp);
            uint8 reason = p.fill.amountWei > pool ? POOL_SHORT : _settleSell(p, b.throughInterval);
            if (reason == 0) {
                pool -= p.fill.amountWei;
                ++sells;
            } else {
                emit PositionRefused(p.order.seller, SELL, reason);
            }
        }
        if (b.mints.length != b.mintSigs.length) revert LengthMismatch();
        if (b.mints.length > 0) _token.mintReadings(b.mints, b.mintSigs);
        emit BatchSettled(b.throughInterval, buys, sells, pool);
    }

    function _checkOperatorSig(Batch calldata b) private view {
        bytes32 digest = hashBatch(b.throughInterval, positionsHash(b.buys, b.sells, b.mints, b.mintSigs));
        (address signer,,) = ECDSA.tryRecover(digest, b.operatorSig);
        if (signer == address(0) || !hasRole(OPERATOR_ROLE, signer)) revert InvalidOperatorSignature(signer);
    }

    function _checkWindow(uint64 readingAt) private view {
        uint256 opensAt = uint256(readingAt) + _anyoneAfter;
        if (block.timestamp < opensAt) revert SettlementWindowNotOpen(uint64(opensAt));
    }

    function _settleBuy(BuyPosition calldata p, uint32 through) private returns (uint8 reason) {
        BuyOrder calldata o = p.order;
        Account memory a = _accounts[o.buyer][o.meter];
        uint24 day;
        uint256 spent;
        (reason, day, spent) = _checkBuyTerms(p, a, through);
        if (reason == 0) reason = _checkOrder(hashBuyOrder(o), o.buyer, p.orderSig, p.closing.timestamp);
        if (reason == 0) reason = _checkBuyerReadings(p, a);
        if (reason != 0) return reason;
        Fill calldata f = p.fill;
        if (f.amountWei > 0 && !_escrow.chargeCommunity(o.buyer, f.amountWei)) return INSUFFICIENT_FUNDS;
        _accounts[o.buyer][o.meter] =
            Account(f.toInterval, uint40(p.closing.timestamp), uint64(p.closing.whIn), day, uint96(spent));
        _emitSettled(o.buyer, BUY, f, p.closing.whIn);
    }

    /// @dev A buy's intervals, cap per interval, expiry, price cap and daily budget.
    function _checkBuyTerms(BuyPosition calldata p, Account memory a, uint32 through)
        private
        view
        returns (uint8 reason, uint24 day, uint256 spent)
    {
        BuyOrder calldata o = p.order;
        Fill calldata f = p.fill;
        day = _day(f.toInterval);
        reason = _checkFill(f, a, through, o.maxWhPerInterval, p.closing.timestamp, o.expiry);
        if (reason != 0) return (reason, day, 0);
        if (_day(f.fromInterval) != day) return (BAD_INTERVALS, day, 0);
        if (f.amountWei > o.capWeiPerKWh * f.wh / 1000) return (PRICE, day, 0);
        spent = (a.day == day && a.lastAt != 0 ? uint256(a.daySpent) : 0) + f.amountWei;
        if ((o.dailyBudgetWei != 0 && spent > o.dailyBudgetWei) || spent > type(uint96).max) {
            return (OVER_DAILY_BUDGET, day, 0);
        }
    }

    /// @dev The buyer's meter and readings; a baseline moves `a` to it.
    function _checkBuyerReadings(BuyPosition calldata p, Account memory a) private view returns (uint8 reason) {
        address meter = p.order.meter;
        (address owner, EnergyToken.MeterKind kind) = _token.enrolledAs(meter);
        if (owner != p.order.buyer || kind != EnergyToken.MeterKind.Consumer) return WRONG_METER;
        if (p.baselineSig.length > 0) {
            reason = _checkBuyerReading(p.baseline, p.baselineSig, meter);
            if (reason == 0) reason = _checkBaseline(a, p.baseline.timestamp, p.baseline.whIn, p.closing.timestamp, p.fill);
            if (reason != 0) return reason;
            a.lastAt = uint40(p.baseline.timestamp);
            a.lastWh = uint64(p.baseline.whIn);
        } else if (a.lastAt == 0) {
            return NO_BASELINE;
        }
        reason = _checkBuyerReading(p.closing, p.closingSig, meter);
        if (reason == 0) reason = _checkClosing(a, p.closing.timestamp, p.closing.whIn, p.fill.wh);
    }

    function _emitSettled(address account, uint8 side, Fill calldata f, uint256 meterWh) private {
        emit PositionSettled(account, side, f.fromInterval, f.toInterval, f.wh, f.amountWei, meterWh);
    }

    function _settleSell(SellPosition calldata p, uint32 through) private returns (uint8) {
        SellOrder calldata o = p.order;
        Fill calldata f = p.fill;
        Account memory a = _accounts[o.seller][o.meter];
        uint8 reason = _checkFill(f, a, through, o.maxWhPerInterval, p.closing.timestamp, o.expiry);
        if (reason != 0) return reason;
        if (_belowFloor(f.amountWei, o.floorWeiPerKWh, f.wh)) return PRICE;
        reason = _checkOrder(hashSellOrder(o), o.seller, p.orderSig, p.closing.timestamp);
        if (reason != 0) return reason;
        if (p.baselineSig.length > 0) {
            if (p.baseline.meter != o.meter) return BAD_READING;
            reason = _checkBaseline(a, p.baseline.timestamp, p.baseline.whOut, p.closing.timestamp, f);
            if (reason != 0) return reason;
            // The token checks the baseline's signature and meter (and mints what it may).
            reason = _tokenSettle(o, p.baseline, p.baselineSig, 0);
            if (reason != 0) return reason;
            a.lastAt = uint40(p.baseline.timestamp);
            a.lastWh = uint64(p.baseline.whOut);
        } else if (a.lastAt == 0) {
            return NO_BASELINE;
        }
        if (p.closing.meter != o.meter || p.closing.whOut > type(uint64).max) return BAD_READING;
        reason = _checkClosing(a, p.closing.timestamp, p.closing.whOut, f.wh);
        if (reason == 0) reason = _tokenSettle(o, p.closing, p.closingSig, f.wh);
        if (reason != 0) return reason;
        if (f.amountWei > 0) _escrow.creditOwed(o.seller, f.amountWei);
        _accounts[o.seller][o.meter] =
            Account(f.toInterval, uint40(p.closing.timestamp), uint64(p.closing.whOut), 0, 0);
        _emitSettled(o.seller, SELL, f, p.closing.whOut);
        return 0;
    }

    /// @dev Whether a sell's amount is below floor × wh × (1 − max line loss) / 1000 (rounded
    /// down): sellers bear the bus's loss, so their payout covers less than the Wh they sent.
    /// A floor so high the product passes 2**256 is below any amount's reach (no revert).
    function _belowFloor(uint256 amountWei, uint256 floorWeiPerKWh, uint64 wh) private view returns (bool) {
        uint256 kept = uint256(wh) * (BPS - _maxLineLossBps); // < 2**64 * 10**4: no overflow
        if (kept == 0) return false;
        if (floorWeiPerKWh > type(uint256).max / kept) return true;
        return amountWei < floorWeiPerKWh * kept / (1000 * BPS);
    }

    /// @dev The checks both sides share: intervals, the order's cap per interval, its expiry.
    function _checkFill(
        Fill calldata f,
        Account memory a,
        uint32 through,
        uint64 maxWhPerInterval,
        uint64 closingAt,
        uint64 expiry
    ) private view returns (uint8) {
        if (
            f.fromInterval > f.toInterval || f.toInterval > through
                || f.filledIntervals > uint256(f.toInterval) - f.fromInterval + 1
        ) return BAD_INTERVALS;
        if (a.lastAt != 0 && f.fromInterval <= a.lastInterval) return NOT_AFTER_LAST;
        if (maxWhPerInterval != 0 && f.wh > uint256(maxWhPerInterval) * f.filledIntervals) return OVER_INTERVAL_CAP;
        if (closingAt > uint256(expiry) + _intervalWallSeconds) return EXPIRED;
        return 0;
    }

    /// @dev A baseline must be newer than the last settled reading, before the closing one,
    /// and no older than the intervals it covers (plus one) in block time.
    function _checkBaseline(Account memory a, uint64 readAt, uint256 wh, uint64 closingAt, Fill calldata f)
        private
        view
        returns (uint8)
    {
        if (wh > type(uint64).max) return BAD_READING;
        uint256 span = (uint256(f.toInterval) - f.fromInterval + 2) * _intervalWallSeconds;
        if (readAt >= closingAt || uint256(readAt) + span < closingAt) return READING_OUT_OF_TIME;
        if (a.lastAt != 0 && (readAt <= a.lastAt || wh < a.lastWh)) return READING_OUT_OF_TIME;
        return 0;
    }

    /// @dev The closing reading: newer than the start, not from the future, counting wh or more.
    function _checkClosing(Account memory a, uint64 readAt, uint256 wh, uint64 claimed) private view returns (uint8) {
        if (readAt <= a.lastAt || readAt > block.timestamp || wh < a.lastWh) return READING_OUT_OF_TIME;
        if (claimed > wh - a.lastWh) return OVER_METERED;
        return 0;
    }

    function _checkBuyerReading(EnergyToken.Reading calldata r, bytes calldata signature, address meter)
        private
        view
        returns (uint8)
    {
        if (r.meter != meter || r.whIn > type(uint64).max) return BAD_READING;
        (address signer,,) = ECDSA.tryRecover(hashReading(r), signature);
        return signer == meter ? 0 : BAD_READING;
    }

    function _tokenSettle(SellOrder calldata o, EnergyToken.Reading calldata r, bytes calldata signature, uint256 burnWh)
        private
        returns (uint8)
    {
        uint8 refused = _token.settleReading(o.seller, r, signature, burnWh);
        if (refused == 0) return 0;
        if (refused == TOKEN_NOT_PRODUCER) return WRONG_METER;
        if (refused == TOKEN_NO_TOKENS) return NO_TOKENS;
        return refused == TOKEN_FROM_THE_FUTURE ? READING_OUT_OF_TIME : BAD_READING;
    }

    /// @dev An order settles only signed by its owner (checked once, then remembered). A cancel
    /// binds what was metered after it: a position whose closing reading is at most two
    /// intervals (of block time) after the cancel still settles, since the interval under way
    /// (and the next, when it was cleared before the cancel was seen) filled the order and its
    /// meters counted the energy; a cancel cannot void what the owner already drew or sent.
    function _checkOrder(bytes32 orderHash, address owner, bytes calldata signature, uint64 closingAt)
        private
        returns (uint8)
    {
        OrderState memory s = _orders[orderHash];
        if (s.state & CANCELLED_STATE != 0 && closingAt > uint256(s.cancelledAt) + 2 * uint256(_intervalWallSeconds)) {
            return CANCELLED;
        }
        if (s.state & VERIFIED != 0) return 0;
        (bool valid,) = validSignature(owner, orderHash, signature);
        if (!valid) return BAD_ORDER_SIGNATURE;
        _orders[orderHash] = OrderState(owner, s.state | VERIFIED, s.cancelledAt);
        return 0;
    }

    function _day(uint32 interval) private view returns (uint24) {
        return uint24(uint256(interval) * _intervalSeconds / 86400);
    }

    // -- orders -------------------------------------------------------------------------------

    /// @notice The seller cancels its order: no position whose closing reading is over two
    /// intervals after the cancel settles from it.
    function cancelSellOrder(SellOrder calldata order) external {
        if (msg.sender != order.seller) revert NotOrderOwner(msg.sender);
        _cancel(hashSellOrder(order));
    }

    /// @notice The buyer cancels its order: no position whose closing reading is over two
    /// intervals after the cancel settles from it (what it drew before still pays).
    function cancelBuyOrder(BuyOrder calldata order) external {
        if (msg.sender != order.buyer) revert NotOrderOwner(msg.sender);
        _cancel(hashBuyOrder(order));
    }

    function _cancel(bytes32 orderHash) private {
        OrderState memory s = _orders[orderHash];
        if (s.state & CANCELLED_STATE != 0) revert OrderAlreadyCancelled(orderHash);
        _orders[orderHash] = OrderState(msg.sender, s.state | CANCELLED_STATE, uint64(block.timestamp));
        emit OrderCancelled(orderHash, msg.sender);
    }

    // -- views --------------------------------------------------------------------------------

    /// @notice The EIP-712 digest a seller signs for an order.
    function hashSellOrder(SellOrder calldata order) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(SELL_ORDER_TYPEHASH, order)));
    }

    /// @notice The EIP-712 digest a buyer signs for an order.
    function hashBuyOrder(BuyOrder calldata order) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BUY_ORDER_TYPEHASH, order)));
    }

    /// @notice The digest of a batch's positions and mints (what the operator's Batch names).
    function positionsHash(
        BuyPosition[] calldata buys,
        SellPosition[] calldata sells,
        EnergyToken.Reading[] calldata mints,
        bytes[] calldata mintSigs
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(buys, sells, mints, mintSigs));
    }

    /// @notice The EIP-712 digest the operator signs to let anyone send a batch.
    function hashBatch(uint32 throughInterval, bytes32 positions) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BATCH_TYPEHASH, throughInterval, positions)));
    }

    /// @notice A reading's EIP-712 digest in the token's domain (EnergyToken.hashReading).
    function hashReading(EnergyToken.Reading calldata r) public view returns (bytes32) {
        bytes32 domain = block.chainid == _tokenChainId ? _tokenDomain : _token.DOMAIN_SEPARATOR();
        return keccak256(abi.encodePacked("\x19\x01", domain, keccak256(abi.encode(READING_TYPEHASH, r))));
    }

    /// @notice An account's settled state on a meter: last interval, last reading's time and
    /// counter, and (a buyer's) day and spend on it.
    function positionOf(address account, address meter)
        external
        view
        returns (uint32 lastInterval, uint64 lastAt, uint64 lastWh, uint24 day, uint96 daySpent)
    {
        Account memory a = _accounts[account][meter];
        return (a.lastInterval, a.lastAt, a.lastWh, a.day, a.daySpent);
    }

    /// @notice Whether an order (by its hash) was cancelled by its owner.
    function cancelled(bytes32 orderHash) external view returns (bool) {
        return _orders[orderHash].state & CANCELLED_STATE != 0;
    }

    /// @notice An order's state: its owner once known, and 0 unseen, 1 verified, 2 cancelled.
    function orderState(bytes32 orderHash) external view returns (address owner, uint8 state) {
        OrderState memory s = _orders[orderHash];
        return (s.owner, s.state & CANCELLED_STATE != 0 ? CANCELLED_STATE : s.state);
    }

    /// @notice The block time of the owner's cancel (0 when not cancelled): positions whose
    /// closing reading is at most two intervals (intervalWallSeconds) later still settle.
    function cancelledAt(bytes32 orderHash) external view returns (uint64) {
        return _orders[orderHash].cancelledAt;
    }

    /// @notice Wei the escrow's settlement pool holds (charged from buyers, not yet credited).
    function poolWei() external view returns (uint256) {
        return _escrow.settlementPool();
    }

    /// @notice The contract's fixed parameters (constructor).
    function parameters()
        external
        view
        returns (
            EnergyToken token,
            EnergyEscrow escrow,
            uint64 anyoneAfterS,
            uint32 intervalSeconds,
            uint32 intervalWallSeconds,
            uint16 maxLineLossBps
        )
    {
        return (_token, _escrow, _anyoneAfter, _intervalSeconds, _intervalWallSeconds, _maxLineLossBps);
    }
}
