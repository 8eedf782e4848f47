// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EnergyToken} from "./EnergyToken.sol";

/// @title EnergyEscrow: prepaid buyer balances and per-delivery payment of energy deals.
/// @notice Buyers deposit Ether into a market's free balance; the market operator opens a deal
/// for an auction's result, locking the buyer's Ether and the seller's tokens; the buyer's
/// enrolled meter reports cumulative delivery and each step pays the seller and burns the
/// delivered tokens. Ether leaves a market (or moves to another) only a notice after it was
/// asked for, so a bid's cover cannot be pulled before the auction it leads has closed.
contract EnergyEscrow is AccessControl, ReentrancyGuard, EIP712 {
    /// @notice Role of the market operator, which opens deals.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @dev Gas given to a push payment; a seller that needs more is paid by pull instead.
    uint256 private constant PUSH_GAS = 30_000;
    /// @notice The market of energy lots sold by auction: openDeal draws on its balances.
    uint8 public constant LOTS = 0;
    /// @notice The community market (its trading comes later; its balances exist already).
    uint8 public constant COMMUNITY = 1;
    /// @notice A request's destination meaning "out of the escrow", to the buyer.
    uint8 public constant OUT = 255;
    /// @dev How many markets there are; market ids run from 0 to MARKETS - 1.
    uint8 private constant MARKETS = 2;

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

    /// @notice A pending request to take Ether out of a market (toMarket OUT) or into another.
    /// @dev One slot: a request is at most a free balance, far below 2^128 wei.
    struct Withdrawal {
        uint128 amount;
        uint64 availableAt;
        uint8 toMarket;
    }

    EnergyToken private immutable _token;
    uint64 private immutable _withdrawalNotice;
    mapping(address buyer => uint256[MARKETS]) private _free;
    mapping(address buyer => Withdrawal[MARKETS]) private _withdrawals;
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
    /// @notice No market has this id (LOTS = 0, COMMUNITY = 1).
    error UnknownMarket(uint8 market);
    /// @notice A move must go to another market than the one it leaves.
    error SameMarket(uint8 market);
    /// @notice The caller has no pending withdrawal or move from this market.
    error NoWithdrawalPending(uint8 market);
    /// @notice The request's notice runs until availableAt; complete it then.
    error NoticeNotOver(uint64 availableAt);

    /// @notice Ether entered a buyer's free balance in a market.
    event Deposited(address indexed buyer, uint8 market, uint256 amount);
    /// @notice A buyer asked to take `amount` out of a market (toMarket OUT) or to move it to
    /// toMarket, from availableAt on; it replaced any earlier request. Amount 0: cancelled.
    event WithdrawalRequested(
        address indexed buyer, uint8 market, uint256 amount, uint64 availableAt, uint8 toMarket
    );
    /// @notice Ether left a buyer's free balance in a market, paid out to the buyer.
    event Withdrawn(address indexed buyer, uint8 market, uint256 amount);
    /// @notice Ether moved from a buyer's free balance in one market to another's.
    event Moved(address indexed buyer, uint8 fromMarket, uint8 toMarket, uint256 amount);
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

    /// @param energyToken the token deals settle in
    /// @param admin the account given the admin and operator roles
    /// @param notice seconds between asking for a withdrawal or move and completing it; the
    /// market sets it above the longest time from a bid to the deal it may open
    constructor(EnergyToken energyToken, address admin, uint64 notice)
        EIP712("gridbid EnergyEscrow", "1")
    {
        _token = energyToken;
        _withdrawalNotice = notice;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    /// @notice Add Ether to the caller's free balance in a market.
    function deposit(uint8 market) external payable nonReentrant {
        _checkMarket(market);
        if (msg.value == 0) revert ZeroAmount();
        _free[msg.sender][market] += msg.value;
        emit Deposited(msg.sender, market, msg.value);
    }

    /// @notice Ask to take `amount` (at most what is free now) out of a market's free balance
    /// once the notice is over. Replaces the market's pending request (its notice starts
    /// again); amount 0 cancels it.
    function requestWithdrawal(uint8 market, uint256 amount) external nonReentrant {
        _checkMarket(market);
        _request(market, OUT, amount);
    }

    /// @notice Ask to move `amount` (at most what is free now) from one market to another once
    /// the notice is over. Shares the source market's one pending request with requestWithdrawal.
    function requestMove(uint8 fromMarket, uint8 toMarket, uint256 amount) external nonReentrant {
        _checkMarket(fromMarket);
        _checkMarket(toMarket);
        if (fromMarket == toMarket) revert SameMarket(fromMarket);
        _request(fromMarket, toMarket, amount);
    }

    /// @notice After its notice, carry out the caller's request on a market: pay out (or move)
    /// the requested amount, or what is free now if less (deals opened meanwhile keep theirs).
    function completeWithdrawal(uint8 market) external nonReentrant {
        _checkMarket(market);
        Withdrawal memory w = _withdrawals[msg.sender][market];
        if (w.availableAt == 0) revert NoWithdrawalPending(market);
        if (block.timestamp < w.availableAt) revert NoticeNotOver(w.availableAt);
        uint256 free = _free[msg.sender][market];
        if (free == 0) revert InsufficientBalance(0, w.amount);
        uint256 amount = w.amount < free ? w.amount : free;
        delete _withdrawals[msg.sender][market];
        _free[msg.sender][market] = free - amount;
        if (w.toMarket != OUT) {
            _free[msg.sender][w.toMarket] += amount;
            emit Moved(msg.sender, market, w.toMarket, amount);
            return;
        }
        emit Withdrawn(msg.sender, market, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    function _request(uint8 market, uint8 toMarket, uint256 amount) private {
        if (amount == 0) {
            if (_withdrawals[msg.sender][market].availableAt == 0) revert NoWithdrawalPending(market);
            delete _withdrawals[msg.sender][market];
            emit WithdrawalRequested(msg.sender, market, 0, 0, toMarket);
            return;
        }
        uint256 free = _free[msg.sender][market];
        if (amount > free) revert InsufficientBalance(free, amount);
        uint64 availableAt = uint64(block.timestamp) + _withdrawalNotice;
        // Fits: what is free is Ether this contract holds, far below 2^128 wei.
        _withdrawals[msg.sender][market] = Withdrawal(uint128(amount), availableAt, toMarket);
        emit WithdrawalRequested(msg.sender, market, amount, availableAt, toMarket);
    }

    function _checkMarket(uint8 market) private pure {
        if (market >= MARKETS) revert UnknownMarket(market);
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
        // Auction lots draw on the LOTS market; a pending withdrawal does not shield Ether.
        uint256 available = _free[buyer][LOTS];
        if (cost > available) revert InsufficientBalance(available, cost);
        _free[buyer][LOTS] = available - cost;
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

    /// @notice A buyer's free balance in a market, in wei (a pending withdrawal still counts).
    function freeOf(address buyer, uint8 market) external view returns (uint256) {
        _checkMarket(market);
        return _free[buyer][market];
    }

    /// @notice A buyer's pending request on a market: amount, when it can be completed, and
    /// where it goes (OUT or a market id); all zero when none is pending.
    function withdrawalOf(address buyer, uint8 market)
        external
        view
        returns (uint256 amount, uint64 availableAt, uint8 toMarket)
    {
        _checkMarket(market);
        Withdrawal memory w = _withdrawals[buyer][market];
        return (w.amount, w.availableAt, w.toMarket);
    }

    /// @notice Seconds from a withdrawal or move request until it can be completed.
    function withdrawalNotice() external view returns (uint64) {
        return _withdrawalNotice;
    }

    /// @notice A buyer's balance locked by open deals (all in LOTS), in wei.
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
        _free[d.buyer][LOTS] += refund;
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
