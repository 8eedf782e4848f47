// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EnergyToken, validSignature} from "./EnergyToken.sol";

/// @title EnergyEscrow: prepaid buyer balances and per-delivery payment of energy deals.
/// @notice Buyers deposit Ether into a market's free balance. A deal opens only from a
/// seller's signed offer and a buyer's signed bid that names it, at or above the offer's
/// floor, between the meters both parties enrolled: the operator cannot invent, alter or
/// reroute either. Delivery is reported with both meters' signed readings (anyone may send
/// them; a deal's first, baseline report only by the operator); each step pays the seller
/// by the buyer's meter and burns the delivered tokens.
/// Ether leaves a market (or moves to another) only a notice after it was asked for, so a
/// bid's cover cannot be pulled before the auction it leads has closed.
contract EnergyEscrow is AccessControl, ReentrancyGuard, EIP712 {
    /// @notice Role of the market operator, which opens deals.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice Role of the interval settlement: charges COMMUNITY balances, credits owed.
    bytes32 public constant SETTLEMENT_ROLE = keccak256("SETTLEMENT_ROLE");
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
    /// @dev An offer's state meaning "cancelled by its seller" (else: 0 unused, or its deal id).
    uint256 private constant CANCELLED = type(uint256).max;

    enum DealStatus { None, Open, Closed }
    enum CloseReason {
        None,
        Completed,
        ClosedByBuyer,
        ClosedBySeller,
        Expired,
        MeterOffline,
        SupplyExhausted,
        MetersDisagree
    }

    /// @notice A seller's signed offer of energy from its enrolled producer meter.
    /// deadline is the last second a deal may open from it.
    struct Offer {
        address seller;
        address sellerMeter;
        uint256 energyWh;
        uint256 floorPriceWeiPerKWh;
        uint64 deadline;
        uint256 nonce;
    }

    /// @notice A buyer's binding bid on one offer (`offer` = hashOffer(offer)), for delivery
    /// to the buyer's enrolled consumer meter: what the buyer signs with its own key.
    struct Bid {
        bytes32 offer;
        address buyer;
        address buyerMeter;
        uint256 priceWeiPerKWh;
        uint256 maxWh;
        uint256 nonce;
        uint64 expiry;
    }

    /// @notice A deal as getDeal returns it.
    struct Deal {
        bytes32 offer;
        address buyer;
        address seller;
        address buyerMeter;
        address sellerMeter;
        uint256 priceWeiPerKWh;
        uint256 energyWh;
        uint256 deliveredWh;
        uint256 paidWei;
        uint256 lockedWei;
        uint256 buyerBaseWh;
        uint256 sellerBaseWh;
        uint256 buyerLastWh;
        uint256 sellerLastWh;
        uint64 openedAt;
        uint64 expiresAt;
        uint64 buyerLastAt;
        uint64 sellerLastAt;
        bool started;
        DealStatus status;
        CloseReason closeReason;
    }

    /// @dev A deal as stored: each address shares its slot with the time or flags written
    /// with it; delivered, paid and locked amounts follow from the counters and the price.
    struct StoredDeal {
        address buyer;
        uint64 openedAt;
        DealStatus status;
        CloseReason closeReason;
        bool started;
        address seller;
        uint64 expiresAt;
        address buyerMeter;
        uint64 buyerLastAt;
        address sellerMeter;
        uint64 sellerLastAt;
        bytes32 offer;
        uint256 priceWeiPerKWh;
        uint256 energyWh;
        uint256 buyerBaseWh;
        uint256 sellerBaseWh;
        uint256 buyerLastWh;
        uint256 sellerLastWh;
    }

    /// @notice EIP-712 type of an Offer.
    bytes32 public constant OFFER_TYPEHASH = keccak256(
        "Offer(address seller,address sellerMeter,uint256 energyWh,uint256 floorPriceWeiPerKWh,uint64 deadline,uint256 nonce)"
    );
    /// @notice EIP-712 type of a Bid.
    bytes32 public constant BID_TYPEHASH = keccak256(
        "Bid(bytes32 offer,address buyer,address buyerMeter,uint256 priceWeiPerKWh,uint256 maxWh,uint256 nonce,uint64 expiry)"
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
    uint64 private immutable _dealDuration;
    mapping(address buyer => uint256[MARKETS]) private _free;
    mapping(address buyer => Withdrawal[MARKETS]) private _withdrawals;
    mapping(address buyer => uint256) private _locked;
    mapping(address seller => uint256) private _owed;
    mapping(uint256 dealId => StoredDeal) private _deals;
    mapping(bytes32 offer => uint256 state) private _offerState;
    mapping(address buyer => mapping(uint256 nonce => bool)) private _nonceUsed;
    /// @dev Per meter, across deals: the newest reading any report used (its time; its whIn
    /// for a buyer meter, whOut for a seller's) and, for a buyer meter, the deal it last
    /// started delivering to (busy while that deal is open). A baseline is never older.
    struct MeterMark {
        uint128 lastWh;
        uint64 lastAt;
        uint64 dealId;
    }

    mapping(address meter => MeterMark) private _marks;
    uint256 private _dealCount;
    /// @dev Wei the interval settlement charged buyers and has not credited to sellers yet.
    uint256 private _settlementPool;

    /// @notice The buyer's free balance does not cover the amount.
    error InsufficientBalance(uint256 available, uint256 required);
    /// @notice Amounts must be positive.
    error ZeroAmount();
    /// @notice Deal terms are malformed: energy 0 or above what the offer and the bid cover,
    /// the buyer is the seller, or the cost rounds to 0 wei.
    error InvalidDeal(bytes32 offer);
    /// @notice The offer's signature is not the named seller's (altered offer or wrong key).
    error InvalidOfferSignature(address seller, address signer);
    /// @notice The bid's signature is not the named buyer's (altered bid or wrong key).
    error InvalidBidSignature(address buyer, address signer);
    /// @notice The bid names another offer.
    error BidNotForOffer(bytes32 offer);
    /// @notice The offer's deadline passed before the deal was opened.
    error OfferExpired(uint64 deadline);
    /// @notice The offer already opened a deal or was cancelled.
    error OfferUsed(bytes32 offer);
    /// @notice The bid expired before the deal was opened.
    error BidExpired(uint64 expiry);
    /// @notice The bid's nonce was already used: a signed bid opens at most one deal.
    error BidAlreadyUsed(address buyer, uint256 nonce);
    /// @notice The bid's price is below the offer's floor.
    error PriceBelowFloor(uint256 price, uint256 floor);
    /// @notice A meter is not the party's enrolled meter of the right kind, or not the deal's.
    error WrongMeter(address meter);
    /// @notice A reading was not signed by its meter.
    error InvalidReading(address meter);
    /// @notice A reading's time is in the future, outside the deal, or before the last one used.
    error ReadingOutOfTime(address meter, uint64 timestamp);
    /// @notice The buyer's meter is delivering to another open deal: its growth cannot be
    /// told apart, so a meter serves one deal at a time (close that one first).
    error MeterBusy(address meter, uint256 dealId);
    /// @notice The deal does not exist or is closed.
    error DealNotOpen(uint256 dealId);
    /// @notice A counter lower than the one this deal last used.
    error DeliveryWentBackwards(uint256 reported, uint256 given);
    /// @notice Only the buyer or the seller may close before expiry (only the seller cancels).
    error NotDealParty(address caller);
    /// @notice Only a fault (MeterOffline, SupplyExhausted, MetersDisagree) lets the operator close a deal.
    error NotAFault(CloseReason reason);
    /// @notice Nothing is owed to the caller.
    error NothingOwed(address caller);
    /// @notice The settlement pool holds less than a credit asks for.
    error PoolShort(uint256 pool, uint256 amount);
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
    /// @notice A deal was opened from a seller's signed offer and a buyer's signed bid.
    event DealOpened(
        uint256 indexed dealId,
        bytes32 indexed offer,
        address indexed buyer,
        address seller,
        address buyerMeter,
        address sellerMeter,
        uint256 priceWeiPerKWh,
        uint256 energyWh,
        uint64 expiresAt,
        uint256 bidNonce
    );
    /// @notice A seller cancelled an offer before any deal opened from it.
    event OfferCancelled(bytes32 indexed offer, address indexed seller);
    /// @notice The first report of a deal fixed both meters' baselines.
    event DeliveryStarted(uint256 indexed dealId, uint256 buyerWh, uint256 sellerWh, uint64 buyerAt, uint64 sellerAt);
    /// @notice Both meters' readings reported delivery; the seller was paid for the step.
    event DeliveryReported(
        uint256 indexed dealId,
        uint256 cumulativeWh,
        uint256 stepWh,
        uint256 stepWei,
        uint256 buyerWh,
        uint256 sellerWh,
        uint64 buyerAt,
        uint64 sellerAt
    );
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

    /// @param energyToken the token deals settle in (and whose meters sign readings)
    /// @param admin the account given the admin and operator roles
    /// @param notice seconds between asking for a withdrawal or move and completing it; the
    /// market sets it above the longest time from a bid to the deal it may open
    /// @param dealSeconds seconds from a deal's opening to its expiry
    constructor(EnergyToken energyToken, address admin, uint64 notice, uint64 dealSeconds)
        EIP712("gridbid EnergyEscrow", "1")
    {
        _token = energyToken;
        _withdrawalNotice = notice;
        _dealDuration = dealSeconds;
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

    /// @notice Open a deal from a seller's signed offer and the winning buyer's signed bid on
    /// it: lock the buyer's Ether and the seller's tokens until the deal's fixed expiry.
    /// @param offer the offer as the seller signed it (EIP-712, domain "gridbid EnergyEscrow" v1)
    /// @param offerSig the seller's signature of the offer
    /// @param bid the bid as the buyer signed it (same domain), naming hashOffer(offer)
    /// @param bidSig the buyer's signature of the bid
    /// @param energyWh the energy sold, at most the offer's energyWh and the bid's maxWh
    function openDeal(
        Offer calldata offer,
        bytes calldata offerSig,
        Bid calldata bid,
        bytes calldata bidSig,
        uint256 energyWh
    ) external onlyRole(OPERATOR_ROLE) nonReentrant returns (uint256 dealId) {
        bytes32 offerHash = _checkOffer(offer, offerSig);
        _checkBid(bid, bidSig, offerHash);
        uint256 cost = _checkTerms(offer, bid, energyWh, offerHash);
        _checkMeter(offer.sellerMeter, offer.seller, EnergyToken.MeterKind.Producer);
        _checkMeter(bid.buyerMeter, bid.buyer, EnergyToken.MeterKind.Consumer);
        address buyer = bid.buyer;
        _nonceUsed[buyer][bid.nonce] = true;
        // Auction lots draw on the LOTS market; a pending withdrawal does not shield Ether.
        uint256 available = _free[buyer][LOTS];
        if (cost > available) revert InsufficientBalance(available, cost);
        _free[buyer][LOTS] = available - cost;
        _locked[buyer] += cost;
        dealId = ++_dealCount;
        _offerState[offerHash] = dealId;
        _store(dealId, offerHash, offer, bid, energyWh);
        // Reverts (ERC20InsufficientAllowance/Balance) undo the whole deal.
        _token.transferFrom(offer.seller, address(this), energyWh);
    }

    function _store(uint256 dealId, bytes32 offerHash, Offer calldata offer, Bid calldata bid, uint256 energyWh)
        private
    {
        StoredDeal storage d = _deals[dealId];
        uint64 expiresAt = uint64(block.timestamp) + _dealDuration;
        d.buyer = bid.buyer;
        d.openedAt = uint64(block.timestamp);
        d.status = DealStatus.Open;
        d.seller = offer.seller;
        d.expiresAt = expiresAt;
        d.buyerMeter = bid.buyerMeter;
        d.sellerMeter = offer.sellerMeter;
        d.offer = offerHash;
        d.priceWeiPerKWh = bid.priceWeiPerKWh;
        d.energyWh = energyWh;
        emit DealOpened(
            dealId,
            offerHash,
            bid.buyer,
            offer.seller,
            bid.buyerMeter,
            offer.sellerMeter,
            bid.priceWeiPerKWh,
            energyWh,
            expiresAt,
            bid.nonce
        );
    }

    function _checkOffer(Offer calldata offer, bytes calldata signature) private view returns (bytes32 offerHash) {
        offerHash = hashOffer(offer);
        (bool valid, address signer) = validSignature(offer.seller, offerHash, signature);
        if (!valid) revert InvalidOfferSignature(offer.seller, signer);
        if (offer.deadline < block.timestamp) revert OfferExpired(offer.deadline);
        if (_offerState[offerHash] != 0) revert OfferUsed(offerHash);
    }

    function _checkBid(Bid calldata bid, bytes calldata signature, bytes32 offerHash) private view {
        bytes32 digest = hashBid(bid);
        (bool valid, address signer) = validSignature(bid.buyer, digest, signature);
        if (!valid) revert InvalidBidSignature(bid.buyer, signer);
        if (bid.offer != offerHash) revert BidNotForOffer(bid.offer);
        if (bid.expiry < block.timestamp) revert BidExpired(bid.expiry);
        if (_nonceUsed[bid.buyer][bid.nonce]) revert BidAlreadyUsed(bid.buyer, bid.nonce);
    }

    function _checkTerms(Offer calldata offer, Bid calldata bid, uint256 energyWh, bytes32 offerHash)
        private
        pure
        returns (uint256 cost)
    {
        if (bid.priceWeiPerKWh < offer.floorPriceWeiPerKWh) {
            revert PriceBelowFloor(bid.priceWeiPerKWh, offer.floorPriceWeiPerKWh);
        }
        if (energyWh == 0 || energyWh > offer.energyWh || energyWh > bid.maxWh || bid.buyer == offer.seller) {
            revert InvalidDeal(offerHash);
        }
        cost = bid.priceWeiPerKWh * energyWh / 1000;
        if (cost == 0) revert InvalidDeal(offerHash);
    }

    function _checkMeter(address meter, address owner, EnergyToken.MeterKind kind) private view {
        (address enrolledOwner, EnergyToken.MeterKind enrolledKind,,,) = _token.meterOf(meter);
        if (enrolledOwner != owner || enrolledKind != kind) revert WrongMeter(meter);
    }

    /// @notice The EIP-712 digest a seller signs for an offer (what a bid's `offer` names).
    function hashOffer(Offer calldata offer) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(OFFER_TYPEHASH, offer)));
    }

    /// @notice The EIP-712 digest a buyer signs for a bid.
    function hashBid(Bid calldata bid) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BID_TYPEHASH, bid)));
    }

    /// @notice Whether a buyer's bid nonce was already used to open a deal.
    function nonceUsed(address buyer, uint256 nonce) external view returns (bool) {
        return _nonceUsed[buyer][nonce];
    }

    /// @notice Whether an offer (by its hash) opened a deal or was cancelled.
    function offerUsed(bytes32 offer) external view returns (bool) {
        return _offerState[offer] != 0;
    }

    /// @notice The deal an offer opened, 0 when none (or when it was cancelled).
    function dealOfOffer(bytes32 offer) external view returns (uint256) {
        uint256 state = _offerState[offer];
        return state == CANCELLED ? 0 : state;
    }

    /// @notice The seller withdraws an offer no deal opened from yet; it can open none after.
    function cancelOffer(Offer calldata offer) external {
        if (msg.sender != offer.seller) revert NotDealParty(msg.sender);
        bytes32 offerHash = hashOffer(offer);
        if (_offerState[offerHash] != 0) revert OfferUsed(offerHash);
        _offerState[offerHash] = CANCELLED;
        emit OfferCancelled(offerHash, msg.sender);
    }

    /// @notice Report a deal's delivery with both meters' signed readings. The first report
    /// (only the operator sends it) fixes the baselines, each no older and no lower than any
    /// reading of that meter a report already used; each later one (anyone may send it) pays
    /// the growth of the buyer's meter since its baseline (up to the deal's energy) and burns
    /// the delivered tokens. The seller's reading attests that its meter was sending meanwhile.
    function reportDelivery(
        uint256 dealId,
        EnergyToken.Reading calldata sellerReading,
        bytes calldata sellerSig,
        EnergyToken.Reading calldata buyerReading,
        bytes calldata buyerSig
    ) external nonReentrant {
        StoredDeal storage d = _deals[dealId];
        if (d.status != DealStatus.Open) revert DealNotOpen(dealId);
        _checkReading(d, sellerReading, sellerSig, d.sellerMeter, d.sellerLastAt);
        _checkReading(d, buyerReading, buyerSig, d.buyerMeter, d.buyerLastAt);
        if (!d.started) {
            _start(dealId, d, sellerReading, buyerReading);
            return;
        }
        _mark(d.buyerMeter, buyerReading.whIn, buyerReading.timestamp, 0);
        _mark(d.sellerMeter, sellerReading.whOut, sellerReading.timestamp, 0);
        _step(dealId, d, sellerReading, buyerReading);
    }

    /// @dev The baseline report: the operator's, from readings no older than the meters' marks.
    function _start(
        uint256 dealId,
        StoredDeal storage d,
        EnergyToken.Reading calldata sellerReading,
        EnergyToken.Reading calldata buyerReading
    ) private {
        // Whoever sends the baseline picks what is paid from: a party sending a later one
        // would skip paying (or being paid for) what flowed before it.
        _checkRole(OPERATOR_ROLE);
        address meter = d.buyerMeter;
        MeterMark memory mark = _marks[meter];
        // One growth, one payment: the same buyer meter never pays two deals at once, and a
        // deal never starts from a reading older or lower than one another deal was paid by.
        if (mark.dealId != 0 && _deals[mark.dealId].status == DealStatus.Open) revert MeterBusy(meter, mark.dealId);
        _checkMark(mark, meter, buyerReading.whIn, buyerReading.timestamp);
        _checkMark(_marks[d.sellerMeter], d.sellerMeter, sellerReading.whOut, sellerReading.timestamp);
        d.started = true;
        d.buyerBaseWh = buyerReading.whIn;
        d.sellerBaseWh = sellerReading.whOut;
        _record(d, sellerReading, buyerReading);
        _mark(meter, buyerReading.whIn, buyerReading.timestamp, dealId);
        _mark(d.sellerMeter, sellerReading.whOut, sellerReading.timestamp, 0);
        emit DeliveryStarted(
            dealId, buyerReading.whIn, sellerReading.whOut, buyerReading.timestamp, sellerReading.timestamp
        );
    }

    function _checkMark(MeterMark memory mark, address meter, uint256 wh, uint64 time) private pure {
        if (time < mark.lastAt) revert ReadingOutOfTime(meter, time);
        if (wh < mark.lastWh) revert DeliveryWentBackwards(mark.lastWh, wh);
    }

    /// @dev Raise a meter's mark to a report's reading (never lower it: a seller's deals
    /// report in any order); dealId 0 keeps the deal the meter delivers to.
    function _mark(address meter, uint256 wh, uint64 time, uint256 dealId) private {
        MeterMark storage mark = _marks[meter];
        if (time >= mark.lastAt && wh >= mark.lastWh) {
            mark.lastWh = SafeCast.toUint128(wh);
            mark.lastAt = time;
        }
        if (dealId != 0) mark.dealId = SafeCast.toUint64(dealId);
    }

    /// @dev A report after the baseline: pay and burn what the buyer's meter grew by.
    function _step(
        uint256 dealId,
        StoredDeal storage d,
        EnergyToken.Reading calldata sellerReading,
        EnergyToken.Reading calldata buyerReading
    ) private {
        if (buyerReading.whIn < d.buyerLastWh) revert DeliveryWentBackwards(d.buyerLastWh, buyerReading.whIn);
        if (sellerReading.whOut < d.sellerLastWh) revert DeliveryWentBackwards(d.sellerLastWh, sellerReading.whOut);
        uint256 before = _delivered(d);
        _record(d, sellerReading, buyerReading);
        uint256 delivered = _delivered(d);
        // Paid cumulatively and rounded down, so the total never exceeds what was locked
        // and full delivery pays exactly the locked cost.
        uint256 stepWei = d.priceWeiPerKWh * delivered / 1000 - d.priceWeiPerKWh * before / 1000;
        _locked[d.buyer] -= stepWei;
        _emitReported(dealId, delivered, delivered - before, stepWei, sellerReading, buyerReading);
        if (delivered > before) _token.burn(delivered - before);
        if (delivered == d.energyWh) _close(dealId, d, CloseReason.Completed);
        _pay(d.seller, stepWei);
    }

    function _emitReported(
        uint256 dealId,
        uint256 delivered,
        uint256 stepWh,
        uint256 stepWei,
        EnergyToken.Reading calldata sellerReading,
        EnergyToken.Reading calldata buyerReading
    ) private {
        emit DeliveryReported(
            dealId,
            delivered,
            stepWh,
            stepWei,
            buyerReading.whIn,
            sellerReading.whOut,
            buyerReading.timestamp,
            sellerReading.timestamp
        );
    }

    function _checkReading(
        StoredDeal storage d,
        EnergyToken.Reading calldata reading,
        bytes calldata signature,
        address meter,
        uint64 lastAt
    ) private view {
        if (reading.meter != meter) revert WrongMeter(reading.meter);
        if (_token.readingSigner(reading, signature) != meter) revert InvalidReading(meter);
        uint64 time = reading.timestamp;
        if (time > block.timestamp || time < d.openedAt || time > d.expiresAt || time < lastAt) {
            revert ReadingOutOfTime(meter, time);
        }
    }

    function _record(StoredDeal storage d, EnergyToken.Reading calldata seller, EnergyToken.Reading calldata buyer)
        private
    {
        d.buyerLastWh = buyer.whIn;
        d.sellerLastWh = seller.whOut;
        d.buyerLastAt = buyer.timestamp;
        d.sellerLastAt = seller.timestamp;
    }

    /// @dev Wh delivered so far: the buyer meter's growth since its baseline, at most the deal's.
    function _delivered(StoredDeal storage d) private view returns (uint256) {
        if (!d.started) return 0;
        uint256 grown = d.buyerLastWh - d.buyerBaseWh;
        return grown < d.energyWh ? grown : d.energyWh;
    }

    /// @notice Close a deal: by the buyer or the seller at any time, by anyone after expiry.
    function closeDeal(uint256 dealId) external nonReentrant {
        StoredDeal storage d = _deals[dealId];
        if (d.status != DealStatus.Open) revert DealNotOpen(dealId);
        CloseReason reason;
        if (msg.sender == d.buyer) reason = CloseReason.ClosedByBuyer;
        else if (msg.sender == d.seller) reason = CloseReason.ClosedBySeller;
        else if (block.timestamp >= d.expiresAt) reason = CloseReason.Expired;
        else revert NotDealParty(msg.sender);
        _close(dealId, d, reason);
    }

    /// @notice The operator ends a deal a fault stopped: a meter offline beyond the grace
    /// period, the seller's supply exhausted, or meters on the bus that disagree. Settlement
    /// is as for any close: what was reported stays paid, the rest of the Ether and tokens go back.
    function closeDealForFault(uint256 dealId, CloseReason reason)
        external
        onlyRole(OPERATOR_ROLE)
        nonReentrant
    {
        StoredDeal storage d = _deals[dealId];
        if (d.status != DealStatus.Open) revert DealNotOpen(dealId);
        if (
            reason != CloseReason.MeterOffline && reason != CloseReason.SupplyExhausted
                && reason != CloseReason.MetersDisagree
        ) {
            revert NotAFault(reason);
        }
        _close(dealId, d, reason);
    }

    /// @notice The interval settlement charges a buyer's COMMUNITY free balance (a pending
    /// request's Ether included: it is still free) into the settlement pool.
    /// @return charged false, and nothing charged, when the balance does not cover `amount`
    function chargeCommunity(address buyer, uint256 amount) external onlyRole(SETTLEMENT_ROLE) returns (bool charged) {
        uint256 free = _free[buyer][COMMUNITY];
        if (amount > free) return false;
        _free[buyer][COMMUNITY] = free - amount;
        _settlementPool += amount;
        return true;
    }

    /// @notice The interval settlement credits a seller from the pool; it withdraws with withdrawOwed.
    function creditOwed(address seller, uint256 amount) external onlyRole(SETTLEMENT_ROLE) {
        uint256 pool = _settlementPool;
        if (amount > pool) revert PoolShort(pool, amount);
        _settlementPool = pool - amount;
        _owed[seller] += amount;
    }

    /// @notice Wei in the settlement pool: charged from buyers, not yet credited to sellers.
    function settlementPool() external view returns (uint256) {
        return _settlementPool;
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
    function getDeal(uint256 dealId) external view returns (Deal memory deal) {
        StoredDeal storage d = _deals[dealId];
        uint256 delivered = _delivered(d);
        deal.offer = d.offer;
        deal.buyer = d.buyer;
        deal.seller = d.seller;
        deal.buyerMeter = d.buyerMeter;
        deal.sellerMeter = d.sellerMeter;
        deal.priceWeiPerKWh = d.priceWeiPerKWh;
        deal.energyWh = d.energyWh;
        deal.deliveredWh = delivered;
        deal.paidWei = d.priceWeiPerKWh * delivered / 1000;
        deal.lockedWei = d.priceWeiPerKWh * d.energyWh / 1000;
        deal.buyerBaseWh = d.buyerBaseWh;
        deal.sellerBaseWh = d.sellerBaseWh;
        deal.buyerLastWh = d.buyerLastWh;
        deal.sellerLastWh = d.sellerLastWh;
        deal.openedAt = d.openedAt;
        deal.expiresAt = d.expiresAt;
        deal.buyerLastAt = d.buyerLastAt;
        deal.sellerLastAt = d.sellerLastAt;
        deal.started = d.started;
        deal.status = d.status;
        deal.closeReason = d.closeReason;
    }

    /// @notice How many deals were ever opened.
    function dealCount() external view returns (uint256) {
        return _dealCount;
    }

    /// @notice Seconds from a deal's opening to its expiry (fixed at deploy).
    function dealDuration() external view returns (uint64) {
        return _dealDuration;
    }

    /// @notice The energy token this escrow settles in.
    function token() external view returns (EnergyToken) {
        return _token;
    }

    function _close(uint256 dealId, StoredDeal storage d, CloseReason reason) private {
        uint256 delivered = _delivered(d);
        uint256 paid = d.priceWeiPerKWh * delivered / 1000;
        uint256 refund = d.priceWeiPerKWh * d.energyWh / 1000 - paid;
        uint256 returnedWh = d.energyWh - delivered;
        d.status = DealStatus.Closed;
        d.closeReason = reason;
        _locked[d.buyer] -= refund;
        _free[d.buyer][LOTS] += refund;
        emit DealClosed(dealId, reason, delivered, paid, refund, returnedWh);
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
