// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EnergyToken} from "./EnergyToken.sol";

/// @title EnergyEscrow: prepaid buyer balances and per-delivery payment of energy deals.
/// @notice Buyers deposit Ether; the market operator opens a deal for an auction's result,
/// locking the buyer's Ether and the seller's tokens; the buyer's enrolled meter reports
/// cumulative delivery and each step pays the seller and burns the delivered tokens.
contract EnergyEscrow is AccessControl, ReentrancyGuard, EIP712 {
    /// @notice Role of the market operator, which opens deals.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @dev Gas given to a push payment; a seller that needs more is paid by pull instead.
    uint256 private constant PUSH_GAS = 30_000;

    enum DealStatus { None, Open, Closed }
    enum CloseReason { None, Completed, ClosedByBuyer, ClosedBySeller, Expired, MeterOffline, SupplyExhausted }

    struct Deal {
        uint256 listingId;
        address buyer;
        address seller;
        uint256 priceWeiPerKWh;
        uint256 energyWh;
        uint256 deliveredWh;
        uint256 paidWei;
        uint256 lockedWei;
        uint64 expiresAt;
        DealStatus status;
        CloseReason closeReason;
    }

    /// @notice A buyer's binding bid: what the buyer signs with its own key.
    struct Bid {
        uint256 listingId;
        address buyer;
        address seller;
        uint256 priceWeiPerKWh;
        uint256 maxWh;
        uint256 nonce;
        uint64 expiry;
    }

    /// @notice EIP-712 type of a Bid.
    bytes32 public constant BID_TYPEHASH = keccak256(
        "Bid(uint256 listingId,address buyer,address seller,uint256 priceWeiPerKWh,uint256 maxWh,uint256 nonce,uint64 expiry)"
    );

    EnergyToken private immutable _token;
    mapping(address buyer => uint256) private _free;
    mapping(address buyer => uint256) private _locked;
    mapping(address seller => uint256) private _owed;
    mapping(uint256 dealId => Deal) private _deals;
    mapping(uint256 listingId => uint256 dealId) private _dealOfListing;
    mapping(address buyer => mapping(uint256 nonce => bool)) private _nonceUsed;
    uint256 private _dealCount;

    /// @notice The buyer's free balance does not cover the amount.
    error InsufficientBalance(uint256 available, uint256 required);
    /// @notice Amounts must be positive.
    error ZeroAmount();
    /// @notice The listing already has a deal.
    error ListingAlreadySettled(uint256 listingId);
    /// @notice Deal terms are malformed (zero energy, price or address, buyer is seller, past expiry).
    error InvalidDeal(uint256 listingId);
    /// @notice The bid's signature is not the named buyer's (altered bid or wrong key).
    error InvalidBidSignature(address buyer, address signer);
    /// @notice The bid expired before the deal was opened.
    error BidExpired(uint64 expiry);
    /// @notice The bid's nonce was already used: a signed bid opens at most one deal.
    error BidAlreadyUsed(address buyer, uint256 nonce);
    /// @notice The deal does not exist or is closed.
    error DealNotOpen(uint256 dealId);
    /// @notice The reporter is not the buyer's enrolled consumer meter.
    error NotBuyerMeter(address reporter);
    /// @notice A cumulative delivery lower than what was already reported.
    error DeliveryWentBackwards(uint256 reported, uint256 given);
    /// @notice Only the buyer or the seller may close before expiry.
    error NotDealParty(address caller);
    /// @notice Only a fault (MeterOffline, SupplyExhausted) lets the operator close a deal.
    error NotAFault(CloseReason reason);
    /// @notice Nothing is owed to the caller.
    error NothingOwed(address caller);
    /// @notice An Ether transfer to the caller failed.
    error TransferFailed(address to, uint256 amount);

    /// @notice Ether entered a buyer's free balance.
    event Deposited(address indexed buyer, uint256 amount);
    /// @notice Ether left a buyer's free balance.
    event Withdrawn(address indexed buyer, uint256 amount);
    /// @notice A deal was opened from an auction's result.
    event DealOpened(
        uint256 indexed dealId,
        uint256 indexed listingId,
        address indexed buyer,
        address seller,
        uint256 priceWeiPerKWh,
        uint256 energyWh,
        uint64 expiresAt
    );
    /// @notice The buyer's meter reported delivery; the seller was paid for the step.
    event DeliveryReported(uint256 indexed dealId, uint256 cumulativeWh, uint256 stepWh, uint256 stepWei);
    /// @notice A payment could not be pushed; the seller can withdraw it.
    event PaymentDeferred(address indexed seller, uint256 amount);
    /// @notice A deal closed; unspent Ether went back to the buyer, undelivered tokens to the seller.
    event DealClosed(
        uint256 indexed dealId,
        CloseReason reason,
        uint256 deliveredWh,
        uint256 paidWei,
        uint256 refundedWei,
        uint256 returnedWh
    );

    constructor(EnergyToken energyToken, address admin) EIP712("gridbid EnergyEscrow", "1") {
        _token = energyToken;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    /// @notice Add Ether to the caller's free balance.
    function deposit() external payable nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        _free[msg.sender] += msg.value;
        emit Deposited(msg.sender, msg.value);
    }

    /// @notice Take Ether out of the caller's free (unlocked) balance.
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 available = _free[msg.sender];
        if (amount > available) revert InsufficientBalance(available, amount);
        _free[msg.sender] = available - amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @notice Open the deal of an auction from the winner's signed bid: lock the buyer's
    /// Ether and the seller's tokens. The operator cannot invent or alter a bid.
    /// @param bid the bid as the buyer signed it (EIP-712, domain "gridbid EnergyEscrow" v1)
    /// @param signature the buyer's 65-byte signature of the bid
    /// @param energyWh the energy sold, at most bid.maxWh
    /// @param expiresAt when anyone may close the deal
    function openDeal(Bid calldata bid, bytes calldata signature, uint256 energyWh, uint64 expiresAt)
        external
        onlyRole(OPERATOR_ROLE)
        nonReentrant
        returns (uint256 dealId)
    {
        address buyer = bid.buyer;
        _checkBid(bid, signature);
        if (_dealOfListing[bid.listingId] != 0) revert ListingAlreadySettled(bid.listingId);
        if (
            energyWh == 0 || energyWh > bid.maxWh || bid.priceWeiPerKWh == 0 || bid.seller == address(0)
                || buyer == bid.seller || expiresAt <= block.timestamp
        ) {
            revert InvalidDeal(bid.listingId);
        }
        _nonceUsed[buyer][bid.nonce] = true;
        uint256 cost = bid.priceWeiPerKWh * energyWh / 1000;
        uint256 available = _free[buyer];
        if (cost > available) revert InsufficientBalance(available, cost);
        _free[buyer] = available - cost;
        _locked[buyer] += cost;
        dealId = ++_dealCount;
        _dealOfListing[bid.listingId] = dealId;
        _deals[dealId] = Deal({
            listingId: bid.listingId,
            buyer: buyer,
            seller: bid.seller,
            priceWeiPerKWh: bid.priceWeiPerKWh,
            energyWh: energyWh,
            deliveredWh: 0,
            paidWei: 0,
            lockedWei: cost,
            expiresAt: expiresAt,
            status: DealStatus.Open,
            closeReason: CloseReason.None
        });
        emit DealOpened(dealId, bid.listingId, buyer, bid.seller, bid.priceWeiPerKWh, energyWh, expiresAt);
        // Reverts (ERC20InsufficientAllowance/Balance) undo the whole deal.
        _token.transferFrom(bid.seller, address(this), energyWh);
    }

    /// @notice The EIP-712 digest a buyer signs for a bid.
    function hashBid(Bid calldata bid) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    BID_TYPEHASH,
                    bid.listingId,
                    bid.buyer,
                    bid.seller,
                    bid.priceWeiPerKWh,
                    bid.maxWh,
                    bid.nonce,
                    bid.expiry
                )
            )
        );
    }

    /// @notice Whether a buyer's bid nonce was already used to open a deal.
    function nonceUsed(address buyer, uint256 nonce) external view returns (bool) {
        return _nonceUsed[buyer][nonce];
    }

    function _checkBid(Bid calldata bid, bytes calldata signature) private view {
        (address signer, ECDSA.RecoverError failure,) = ECDSA.tryRecover(hashBid(bid), signature);
        if (failure != ECDSA.RecoverError.NoError || signer != bid.buyer) {
            revert InvalidBidSignature(bid.buyer, signer);
        }
        if (bid.expiry < block.timestamp) revert BidExpired(bid.expiry);
        if (_nonceUsed[bid.buyer][bid.nonce]) revert BidAlreadyUsed(bid.buyer, bid.nonce);
    }

    /// @notice The buyer's meter reports cumulative delivered Wh; the step is paid and burned.
    function reportDelivery(uint256 dealId, uint256 cumulativeWh) external nonReentrant {
        Deal storage d = _deals[dealId];
        if (d.status != DealStatus.Open) revert DealNotOpen(dealId);
        (address owner, EnergyToken.MeterKind kind,,,) = _token.meterOf(msg.sender);
        if (kind != EnergyToken.MeterKind.Consumer || owner != d.buyer) revert NotBuyerMeter(msg.sender);
        if (cumulativeWh < d.deliveredWh) revert DeliveryWentBackwards(d.deliveredWh, cumulativeWh);
        uint256 delivered = cumulativeWh > d.energyWh ? d.energyWh : cumulativeWh;
        uint256 stepWh = delivered - d.deliveredWh;
        if (stepWh == 0) return;
        // Paid cumulatively and rounded down, so the total never exceeds what was locked
        // and full delivery pays exactly the locked cost.
        uint256 paidTotal = d.priceWeiPerKWh * delivered / 1000;
        uint256 stepWei = paidTotal - d.paidWei;
        d.deliveredWh = delivered;
        d.paidWei = paidTotal;
        _locked[d.buyer] -= stepWei;
        emit DeliveryReported(dealId, delivered, stepWh, stepWei);
        _token.burn(stepWh);
        if (delivered == d.energyWh) _close(dealId, d, CloseReason.Completed);
        _pay(d.seller, stepWei);
    }

    /// @notice Close a deal: by the buyer or the seller at any time, by anyone after expiry.
    function closeDeal(uint256 dealId) external nonReentrant {
        Deal storage d = _deals[dealId];
        if (d.status != DealStatus.Open) revert DealNotOpen(dealId);
        CloseReason reason;
        if (msg.sender == d.buyer) reason = CloseReason.ClosedByBuyer;
        else if (msg.sender == d.seller) reason = CloseReason.ClosedBySeller;
        else if (block.timestamp >= d.expiresAt) reason = CloseReason.Expired;
        else revert NotDealParty(msg.sender);
        _close(dealId, d, reason);
    }

    /// @notice The operator ends a deal a fault stopped: a meter offline beyond the grace
    /// period, or the seller's supply exhausted. Settlement is as for any close: what was
    /// reported stays paid, the rest of the Ether and tokens go back.
    function closeDealForFault(uint256 dealId, CloseReason reason)
        external
        onlyRole(OPERATOR_ROLE)
        nonReentrant
    {
        Deal storage d = _deals[dealId];
        if (d.status != DealStatus.Open) revert DealNotOpen(dealId);
        if (reason != CloseReason.MeterOffline && reason != CloseReason.SupplyExhausted) {
            revert NotAFault(reason);
        }
        _close(dealId, d, reason);
    }

    /// @notice Withdraw payments that could not be pushed to the caller.
    function withdrawOwed() external nonReentrant {
        uint256 amount = _owed[msg.sender];
        if (amount == 0) revert NothingOwed(msg.sender);
        _owed[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @notice A buyer's free balance in wei.
    function balanceOf(address buyer) external view returns (uint256) {
        return _free[buyer];
    }

    /// @notice A buyer's balance locked by open deals, in wei.
    function lockedOf(address buyer) external view returns (uint256) {
        return _locked[buyer];
    }

    /// @notice Payments waiting for a seller to withdraw them, in wei.
    function owedTo(address seller) external view returns (uint256) {
        return _owed[seller];
    }

    /// @notice A deal by id (status None when it does not exist).
    function getDeal(uint256 dealId) external view returns (Deal memory) {
        return _deals[dealId];
    }

    /// @notice The deal opened for a listing, 0 when none.
    function dealOfListing(uint256 listingId) external view returns (uint256) {
        return _dealOfListing[listingId];
    }

    /// @notice How many deals were ever opened.
    function dealCount() external view returns (uint256) {
        return _dealCount;
    }

    /// @notice The energy token this escrow settles in.
    function token() external view returns (EnergyToken) {
        return _token;
    }

    function _close(uint256 dealId, Deal storage d, CloseReason reason) private {
        uint256 refund = d.lockedWei - d.paidWei;
        uint256 returnedWh = d.energyWh - d.deliveredWh;
        d.status = DealStatus.Closed;
        d.closeReason = reason;
        _locked[d.buyer] -= refund;
        _free[d.buyer] += refund;
        emit DealClosed(dealId, reason, d.deliveredWh, d.paidWei, refund, returnedWh);
        if (returnedWh > 0) _token.transfer(d.seller, returnedWh);
    }

    /// @dev Push with bounded gas; a seller that rejects or needs more gas is paid by pull.
    function _pay(address seller, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = seller.call{value: amount, gas: PUSH_GAS}("");
        if (!ok) {
            _owed[seller] += amount;
            emit PaymentDeferred(seller, amount);
        }
    }
}
