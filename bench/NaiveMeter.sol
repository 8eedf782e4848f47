// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title The naive baseline for bench/gas.py: a meter posts its cumulative reading, nothing more.
contract NaiveMeter {
    mapping(address meter => uint256) public readings;

    event Reported(address indexed meter, uint256 cumulativeWh);

    function report(uint256 cumulativeWh) external {
        readings[msg.sender] = cumulativeWh;
        emit Reported(msg.sender, cumulativeWh);
    }
}
