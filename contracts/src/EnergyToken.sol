// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title EnergyToken: 1 unit = 1 Wh measured into a producer's battery (1 token = 1 kWh).
/// @notice Minted only by enrolled producer meters from their cumulative readings; burned
/// only by the escrow as energy is delivered. The meter registry lives here too.
/// @dev Each mint is capped by the meter's rated power times the time since its last mint
/// (or its enrollment), so a compromised meter cannot mint more than it could have measured.
contract EnergyToken is ERC20, AccessControl {
    /// @notice Role of the escrow contract, which burns delivered energy.
    bytes32 public constant ESCROW_ROLE = keccak256("ESCROW_ROLE");

    enum MeterKind { None, Producer, Consumer }

    struct Meter {
        address owner;
        MeterKind kind;
        uint32 ratedPowerW;
        uint256 lastReadingWh;
        uint64 lastMintAt;
    }

    mapping(address meter => Meter) private _meters;

    /// @notice The caller is not an enrolled producer meter.
    error NotProducerMeter(address caller);
    /// @notice Enrollment needs an owner, a kind and a rated power.
    error InvalidEnrollment(address meter);
    /// @notice The meter is not enrolled.
    error MeterNotEnrolled(address meter);
    /// @notice A cumulative reading lower than the last one.
    error ReadingWentBackwards(uint256 last, uint256 given);
    /// @notice The reading grew by more than the meter's rated power allows since its last mint.
    error MintAboveCap(uint256 wh, uint256 capWh);

    /// @notice A meter was enrolled (or re-enrolled) for an owner.
    event MeterEnrolled(address indexed meter, address indexed owner, MeterKind kind, uint32 ratedPowerW);
    /// @notice A meter was removed from the registry.
    event MeterDisenrolled(address indexed meter);
    /// @notice Energy measured by a producer meter was minted to its owner.
    event EnergyMinted(address indexed meter, address indexed owner, uint256 wh, uint256 cumulativeWh);

    constructor(address admin) ERC20("gridbid Energy", "GEN") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Token units are Wh; 3 decimals make one whole token a kWh.
    function decimals() public pure override returns (uint8) {
        return 3;
    }

    /// @notice Enroll a meter account for its owner, with its role and rated power.
    function enrollMeter(address meter, address owner, MeterKind kind, uint32 ratedPowerW)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (meter == address(0) || owner == address(0) || kind == MeterKind.None || ratedPowerW == 0) {
            revert InvalidEnrollment(meter);
        }
        Meter storage m = _meters[meter];
        m.owner = owner;
        m.kind = kind;
        m.ratedPowerW = ratedPowerW;
        m.lastMintAt = uint64(block.timestamp);
        emit MeterEnrolled(meter, owner, kind, ratedPowerW);
    }

    /// @notice Remove a meter; it can no longer mint or report.
    /// @dev The last reading is kept, so re-enrolling the same meter cannot mint its
    /// counter a second time.
    function disenrollMeter(address meter) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Meter storage m = _meters[meter];
        if (m.kind == MeterKind.None) revert MeterNotEnrolled(meter);
        m.owner = address(0);
        m.kind = MeterKind.None;
        m.ratedPowerW = 0;
        emit MeterDisenrolled(meter);
    }

    /// @notice A meter's registry entry (kind None when not enrolled).
    function meterOf(address meter)
        external
        view
        returns (address owner, MeterKind kind, uint32 ratedPowerW, uint256 lastReadingWh, uint64 lastMintAt)
    {
        Meter storage m = _meters[meter];
        return (m.owner, m.kind, m.ratedPowerW, m.lastReadingWh, m.lastMintAt);
    }

    /// @notice The most Wh a producer meter may mint now: rated power × time since its last mint.
    function mintableWh(address meter) public view returns (uint256) {
        Meter storage m = _meters[meter];
        if (m.kind != MeterKind.Producer) return 0;
        return uint256(m.ratedPowerW) * (block.timestamp - m.lastMintAt) / 3600;
    }

    /// @notice A producer meter reports its cumulative Wh; the increase is minted to its owner.
    /// @dev An equal reading is a no-op so that a retried report is harmless. A meter whose
    /// counter ran ahead of its cap reports a lower cumulative value now and the rest later.
    function mintReading(uint256 cumulativeWh) external {
        Meter storage m = _meters[msg.sender];
        if (m.kind != MeterKind.Producer) revert NotProducerMeter(msg.sender);
        uint256 last = m.lastReadingWh;
        if (cumulativeWh < last) revert ReadingWentBackwards(last, cumulativeWh);
        if (cumulativeWh == last) return;
        uint256 wh = cumulativeWh - last;
        uint256 cap = mintableWh(msg.sender);
        if (wh > cap) revert MintAboveCap(wh, cap);
        m.lastReadingWh = cumulativeWh;
        m.lastMintAt = uint64(block.timestamp);
        _mint(m.owner, wh);
        emit EnergyMinted(msg.sender, m.owner, wh, cumulativeWh);
    }

    /// @notice The escrow burns delivered energy from its own balance.
    function burn(uint256 wh) external onlyRole(ESCROW_ROLE) {
        _burn(msg.sender, wh);
    }
}
