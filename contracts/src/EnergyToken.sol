// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title EnergyToken: 1 unit = 1 Wh measured into a producer's battery (1 token = 1 kWh).
/// @notice Minted only by enrolled producer meters from their cumulative readings; burned
/// only by the escrow as energy is delivered. The meter registry lives here too.
/// @dev A later change caps each mint by the meter's rated power over the time since its
/// last reading; today a meter can mint whatever its counter says.
contract EnergyToken is ERC20, AccessControl {
    /// @notice Role of the escrow contract, which burns delivered energy.
    bytes32 public constant ESCROW_ROLE = keccak256("ESCROW_ROLE");

    enum MeterKind { None, Producer, Consumer }

    struct Meter {
        address owner;
        MeterKind kind;
        uint32 ratedPowerW;
        uint256 lastReadingWh;
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
        returns (address owner, MeterKind kind, uint32 ratedPowerW, uint256 lastReadingWh)
    {
        Meter storage m = _meters[meter];
        return (m.owner, m.kind, m.ratedPowerW, m.lastReadingWh);
    }

    /// @notice A producer meter reports its cumulative Wh; the increase is minted to its owner.
    /// @dev An equal reading is a no-op so that a retried report is harmless. Not yet capped
    /// by ratedPowerW over the time since the last reading (a later change adds the cap).
    function mintReading(uint256 cumulativeWh) external {
        Meter storage m = _meters[msg.sender];
        if (m.kind != MeterKind.Producer) revert NotProducerMeter(msg.sender);
        uint256 last = m.lastReadingWh;
        if (cumulativeWh < last) revert ReadingWentBackwards(last, cumulativeWh);
        if (cumulativeWh == last) return;
        m.lastReadingWh = cumulativeWh;
        uint256 wh = cumulativeWh - last;
        _mint(m.owner, wh);
        emit EnergyMinted(msg.sender, m.owner, wh, cumulativeWh);
    }

    /// @notice The escrow burns delivered energy from its own balance.
    function burn(uint256 wh) external onlyRole(ESCROW_ROLE) {
        _burn(msg.sender, wh);
    }
}
