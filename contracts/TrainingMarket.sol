// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ITrainingMarket} from "./interfaces/ITrainingMarket.sol";

/// @title TrainingMarket
/// @notice See ITrainingMarket. Every wei the contract holds belongs to exactly one bucket: a task's escrow,
/// reserved (accepted, not yet finalized rewards), unclaimed (finalized rewards), stakes, bonds, challenge bonds
/// or burned (penalties nobody may collect), or an account's credit. Each function moves wei between buckets or
/// out to their owner, never elsewhere. A task created with createTokenTask keeps all its buckets in its ERC20
/// token instead of wei; per token, the contract's balance is the sum of that token's task buckets and credits.
contract TrainingMarket is ITrainingMarket, ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint32 public constant MAX_ROUNDS = 1000;
    uint256 public constant MAX_VALIDATORS = 32;
    uint256 public constant MAX_CID_BYTES = 128;
    bytes32 private constant REVEALED = bytes32(uint256(1));
    bytes32 private constant FORFEITED = bytes32(uint256(2));
    /// @notice Whoever forfeits an unrevealed commitment is credited stake / FORFEIT_BOUNTY_DIVISOR; the rest burns.
    uint256 public constant FORFEIT_BOUNTY_DIVISOR = 10;
    /// @notice An upheld challenge's winner is credited slashed bonds / UPHELD_REWARD_DIVISOR; the rest burns, so
    /// challenging one's own fraud loses money.
    uint256 public constant UPHELD_REWARD_DIVISOR = 2;
    uint8 private constant CHALLENGE_OPEN = 1;
    uint8 private constant CHALLENGE_SETTLED = 2;

    struct Task {
        TaskParams params;
        address owner;
        TaskStatus status;
        uint32 currentRound;
        uint32 activeContributors;
        uint32 pendingRounds;
        uint64 closedAt; // when the task stopped being active; 0 while active
        uint256 roundBudget;
        uint256 escrow;
        uint256 reserved;
        uint256 unclaimed;
        uint256 stakes;
        uint256 bonds;
        uint256 challengeBonds;
        uint256 burned;
    }

    struct Round {
        uint64 startsAt;
        uint64 commitEnd;
        uint64 revealEnd;
        uint32 commits;
        uint32 reveals;
        uint64 validateEnd;
        uint64 acceptedAt;
        uint64 finalizedAt;
        RoundStatus status;
        bytes32 acceptedHash;
        bytes32 modelDigest;
        bytes32 rewardsRoot;
        bytes32 slashRoot;
        uint256 rewardTotal;
        uint256 rewardClaimed;
        uint32 challenges;
        ChallengeOutcome outcome;
    }

    struct Contributor {
        bool joined;
        uint32 lastRound; // 1 + the last round committed to; 0 for none
        // 1 + the last accepted round committed to before lastRound; 0 for none. A failed lastRound must not
        // free a stake that an earlier accepted round can still slash; rounds finalize in order, so the
        // latest accepted one is the last to settle.
        uint32 lockedRound;
        uint128 stake;
    }

    struct Validator {
        bool listed;
        bool bonded;
        uint128 bond;
    }

    uint256 public taskCount;
    /// @notice Sum of all accounts' credits.
    uint256 public totalCredits;
    mapping(address account => uint256) public credits;
    /// @notice Sum of all accounts' credits in a token.
    mapping(address token => uint256) public totalTokenCredits;
    mapping(address token => mapping(address account => uint256)) public tokenCredits;

    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => address) private _tokens; // address(0): native ETH
    mapping(uint256 taskId => address[]) private _validators;
    mapping(uint256 taskId => mapping(address => Validator)) private _validatorInfo;
    mapping(uint256 taskId => mapping(address => Contributor)) private _contributors;
    mapping(uint256 taskId => mapping(uint32 round => Round)) private _rounds;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address => bytes32))) private _commitments;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address => bytes32))) private _proposals;
    mapping(uint256 taskId => mapping(uint32 round => mapping(bytes32 => uint32))) private _votes;
    mapping(uint256 taskId => mapping(uint32 round => mapping(uint256 word => uint256))) private _claimedBitmap;
    mapping(uint256 taskId => mapping(uint32 round => mapping(uint256 word => uint256))) private _slashedBitmap;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address => uint8))) private _challengers;

    // ---------------------------------------------------------------- task owner

    /// @inheritdoc ITrainingMarket
    function createTask(TaskParams calldata params, string calldata specCid, address[] calldata validators)
        external
        payable
        returns (uint256 taskId)
    {
        return _createTask(params, specCid, validators, address(0), msg.value);
    }

    /// @inheritdoc ITrainingMarket
    function createTokenTask(
        TaskParams calldata params,
        string calldata specCid,
        address[] calldata validators,
        address token,
        uint256 budget
    ) external nonReentrant returns (uint256 taskId) {
        if (token == address(0)) revert BadToken(token);
        // A fee-on-transfer token delivers less than `budget`: the escrow is what actually arrived, so every
        // bucket stays backed by tokens the contract holds.
        uint256 received = _pull(token, budget);
        return _createTask(params, specCid, validators, token, received);
    }

    function _createTask(
        TaskParams calldata params,
        string calldata specCid,
        address[] calldata validators,
        address token,
        uint256 budget
    ) private returns (uint256 taskId) {
        if (budget == 0) revert EmptyBudget();
        if (params.numRounds == 0 || params.numRounds > MAX_ROUNDS) revert BadRoundCount(params.numRounds);
        if (params.minContributors == 0 || params.maxContributors < params.minContributors) {
            revert BadContributorRange(params.minContributors, params.maxContributors);
        }
        if (
            params.commitDuration == 0 || params.revealDuration == 0 || params.validationDuration == 0
                || params.challengeDuration < params.validationDuration
        ) revert BadDuration();
        if (validators.length == 0 || validators.length > MAX_VALIDATORS) {
            revert BadValidatorCount(validators.length);
        }
        // A quorum of more than half: two disjoint sets of validators can never both accept.
        if (2 * uint256(params.quorum) <= validators.length || params.quorum > validators.length) {
            revert BadQuorum(params.quorum, validators.length);
        }
        if (params.contributorStake == 0 || params.validatorBond == 0 || params.challengeBond == 0) revert BadBond();
        if (params.validatorSlash > params.validatorBond) revert BadSlash(params.validatorSlash, params.validatorBond);
        if (params.arbiter == address(0) || params.arbiter == msg.sender) revert BadArbiter(params.arbiter);
        _checkCid(specCid);

        taskId = ++taskCount;
        Task storage task = _tasks[taskId];
        task.params = params;
        task.owner = msg.sender;
        task.status = TaskStatus.Active;
        task.roundBudget = budget / params.numRounds;
        task.escrow = budget;
        if (token != address(0)) _tokens[taskId] = token;
        for (uint256 i = 0; i < validators.length; i++) {
            address validator = validators[i];
            if (validator == address(0) || _validatorInfo[taskId][validator].listed) revert BadValidator(validator);
            if (validator == params.arbiter) revert BadArbiter(validator);
            _validatorInfo[taskId][validator] = Validator({listed: true, bonded: false, bond: 0});
        }
        _validators[taskId] = validators;

        emit TaskCreated(taskId, msg.sender, specCid, task.params, validators, budget);
        if (token != address(0)) emit TaskToken(taskId, token);
        _startRound(taskId, task, 0, uint64(block.timestamp) + params.joinDuration);
    }

    /// @inheritdoc ITrainingMarket
    function cancelTask(uint256 taskId) external nonReentrant {
        Task storage task = _activeTask(taskId);
        if (msg.sender != task.owner) revert NotOwner(msg.sender);
        // Revealed updates are public: the round must be validated (and its contributors paid) or fail first.
        uint32 round = task.currentRound;
        if (_rounds[taskId][round].reveals != 0) revert RoundHasReveals(round);
        task.status = TaskStatus.Cancelled;
        task.closedAt = uint64(block.timestamp);
        emit TaskCancelled(taskId);
        _refund(taskId, task);
    }

    /// @inheritdoc ITrainingMarket
    function withdrawRefund(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        if (msg.sender != task.owner) revert NotOwner(msg.sender);
        if (task.status == TaskStatus.Active) revert TaskStillActive(taskId);
        if (task.escrow == 0) revert NothingToWithdraw();
        _refund(taskId, task);
    }

    // ---------------------------------------------------------------- validators

    /// @inheritdoc ITrainingMarket
    function bondValidator(uint256 taskId) external payable {
        Task storage task = _activeTask(taskId);
        Validator storage validator = _validatorInfo[taskId][msg.sender];
        if (!validator.listed) revert NotValidator(msg.sender);
        // A validator slashed below the bond tops it up to the full bond before it may propose again.
        uint256 missing = task.params.validatorBond - validator.bond;
        if (missing == 0) revert AlreadyBonded();
        address token = _checkValue(taskId, missing);
        validator.bonded = true;
        validator.bond += uint128(missing);
        task.bonds += missing;
        emit ValidatorBonded(taskId, msg.sender, missing);
        if (token != address(0)) _pullExact(token, missing);
    }

    /// @inheritdoc ITrainingMarket
    function withdrawBond(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        Validator storage validator = _validatorInfo[taskId][msg.sender];
        if (!validator.listed) revert NotValidator(msg.sender);
        if (task.status == TaskStatus.Active) revert TaskStillActive(taskId);
        if (task.pendingRounds != 0) revert RoundsPending(task.pendingRounds);
        uint256 amount = validator.bond;
        if (amount == 0) revert NothingToWithdraw();
        validator.bond = 0;
        task.bonds -= amount;
        emit BondWithdrawn(taskId, msg.sender, amount);
        _pay(taskId, msg.sender, amount);
    }

    /// @inheritdoc ITrainingMarket
    function propose(uint256 taskId, uint32 round, Proposal calldata proposal) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _rounds[taskId][round];
        if (r.status == RoundStatus.Open) {
            if (task.status != TaskStatus.Active) revert TaskNotActive(taskId);
            if (round != task.currentRound) revert WrongRound(task.currentRound, round);
            Phase current = _phase(task, r);
            if (current != Phase.Validate) revert WrongPhase(Phase.Validate, current);
        } else if (r.status == RoundStatus.Accepted) {
            // Late but in time: agreeing with an accepted round spares the validator its slash.
            if (block.timestamp >= r.validateEnd) revert WrongPhase(Phase.Validate, Phase.Expired);
        } else {
            revert WrongRoundStatus(r.status);
        }
        Validator storage validator = _validatorInfo[taskId][msg.sender];
        if (!validator.listed) revert NotValidator(msg.sender);
        if (validator.bond < task.params.validatorBond) revert NotBonded();
        if (r.reveals < task.params.minContributors) revert TooFewReveals(r.reveals, task.params.minContributors);
        if (_proposals[taskId][round][msg.sender] != bytes32(0)) revert AlreadyProposed();
        if (proposal.rewardTotal > task.roundBudget) revert RewardsOverBudget(proposal.rewardTotal, task.roundBudget);
        _checkCid(proposal.modelCid);
        _checkCid(proposal.recordCid);

        bytes32 proposalHash = keccak256(
            abi.encode(
                proposal.modelDigest,
                proposal.recordDigest,
                proposal.rewardsRoot,
                proposal.slashRoot,
                proposal.rewardTotal
            )
        );
        _proposals[taskId][round][msg.sender] = proposalHash;
        uint32 votes = ++_votes[taskId][round][proposalHash];
        emit RoundProposed(taskId, round, msg.sender, proposalHash, proposal);

        if (votes == task.params.quorum && r.status == RoundStatus.Open) {
            r.status = RoundStatus.Accepted;
            r.acceptedAt = uint64(block.timestamp);
            r.acceptedHash = proposalHash;
            r.modelDigest = proposal.modelDigest;
            r.rewardsRoot = proposal.rewardsRoot;
            r.slashRoot = proposal.slashRoot;
            r.rewardTotal = proposal.rewardTotal;
            task.escrow -= proposal.rewardTotal;
            task.reserved += proposal.rewardTotal;
            task.pendingRounds += 1;
            emit RoundAccepted(taskId, round, proposalHash, proposal.modelDigest, proposal.rewardTotal);
            _nextRound(taskId, task);
        }
    }

    /// @inheritdoc ITrainingMarket
    function failRound(uint256 taskId) external {
        Task storage task = _activeTask(taskId);
        uint32 round = task.currentRound;
        Round storage r = _rounds[taskId][round];
        Phase current = _phase(task, r);
        bool tooFew = r.reveals < task.params.minContributors;
        if (current != Phase.Expired && !(current == Phase.Validate && tooFew)) revert RoundNotExpired();
        r.status = RoundStatus.Failed;
        if (!tooFew) {
            // Enough updates were revealed to validate: a validator that proposed nothing was absent.
            address[] storage validators = _validators[taskId];
            for (uint256 i = 0; i < validators.length; i++) {
                if (_proposals[taskId][round][validators[i]] == bytes32(0)) {
                    _slashValidator(taskId, task, round, validators[i]);
                }
            }
        }
        emit RoundFailed(taskId, round, r.reveals);
        _nextRound(taskId, task);
    }

    // ---------------------------------------------------------------- contributors

    /// @inheritdoc ITrainingMarket
    function join(uint256 taskId) external payable {
        Task storage task = _activeTask(taskId);
        if (_validatorInfo[taskId][msg.sender].listed || msg.sender == task.params.arbiter) {
            revert ConflictOfInterest(msg.sender);
        }
        Contributor storage contributor = _contributors[taskId][msg.sender];
        if (contributor.joined) revert AlreadyJoined();
        uint256 stake = task.params.contributorStake;
        address token = _checkValue(taskId, stake);
        contributor.joined = true;
        contributor.stake = uint128(stake);
        task.activeContributors += 1;
        task.stakes += stake;
        emit ContributorJoined(taskId, msg.sender, stake);

        Round storage r = _rounds[taskId][task.currentRound];
        if (block.timestamp < r.startsAt && task.activeContributors >= task.params.maxContributors) {
            _startRound(taskId, task, task.currentRound, uint64(block.timestamp));
        }
        if (token != address(0)) _pullExact(token, stake);
    }

    /// @inheritdoc ITrainingMarket
    function leave(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        Contributor storage contributor = _contributors[taskId][msg.sender];
        if (!contributor.joined) revert NotJoined();
        uint32 last = contributor.lastRound;
        if (last != 0 && _forfeitable(taskId, task, last - 1, msg.sender)) {
            // Leaving does not take back a stake whose commitment was never opened.
            _forfeit(taskId, task, last - 1, msg.sender, msg.sender);
            return;
        }
        _checkStakeFree(taskId, task, msg.sender, contributor.lastRound);
        _checkStakeFree(taskId, task, msg.sender, contributor.lockedRound);
        uint256 refund = contributor.stake;
        contributor.joined = false;
        contributor.stake = 0;
        task.activeContributors -= 1;
        task.stakes -= refund;
        emit ContributorLeft(taskId, msg.sender, refund);
        if (refund != 0) _pay(taskId, msg.sender, refund);
    }

    /// @inheritdoc ITrainingMarket
    function commit(uint256 taskId, uint32 round, bytes32 commitment) external {
        Task storage task = _activeTask(taskId);
        if (round != task.currentRound) revert WrongRound(task.currentRound, round);
        Round storage r = _rounds[taskId][round];
        Phase current = _phase(task, r);
        if (current != Phase.Commit) revert WrongPhase(Phase.Commit, current);
        Contributor storage contributor = _contributors[taskId][msg.sender];
        if (!contributor.joined) revert NotJoined();
        if (commitment == bytes32(0) || commitment == REVEALED || commitment == FORFEITED) revert EmptyCommitment();
        mapping(address => bytes32) storage commitments = _commitments[taskId][round];
        if (commitments[msg.sender] != bytes32(0)) revert AlreadyCommitted();
        uint32 maxContributors = task.params.maxContributors;
        if (r.commits >= maxContributors) revert RoundFull(maxContributors);

        commitments[msg.sender] = commitment;
        uint32 previous = contributor.lastRound;
        if (previous != 0 && _forfeitable(taskId, task, previous - 1, msg.sender)) revert UnopenedCommitment(previous - 1);
        if (previous != 0) {
            RoundStatus earlier = _rounds[taskId][previous - 1].status;
            if (earlier == RoundStatus.Accepted || earlier == RoundStatus.Finalized) contributor.lockedRound = previous;
        }
        contributor.lastRound = round + 1;
        uint32 commits = ++r.commits;
        emit UpdateCommitted(taskId, round, msg.sender, commitment);

        uint32 active = task.activeContributors;
        if (commits == (active < maxContributors ? active : maxContributors)) {
            uint64 now_ = uint64(block.timestamp);
            _schedule(taskId, task, round, r.startsAt, now_, now_ + task.params.revealDuration);
        }
    }

    /// @inheritdoc ITrainingMarket
    function reveal(
        uint256 taskId,
        uint32 round,
        string calldata cid,
        bytes32 updateDigest,
        uint64 numSamples,
        bytes32 salt
    ) external {
        Task storage task = _activeTask(taskId);
        if (round != task.currentRound) revert WrongRound(task.currentRound, round);
        Round storage r = _rounds[taskId][round];
        Phase current = _phase(task, r);
        if (current != Phase.Reveal) revert WrongPhase(Phase.Reveal, current);
        bytes32 commitment = _commitments[taskId][round][msg.sender];
        if (commitment == bytes32(0)) revert NotCommitted();
        if (commitment == REVEALED) revert AlreadyRevealed();
        if (keccak256(abi.encode(msg.sender, taskId, round, updateDigest, salt)) != commitment) {
            revert CommitmentMismatch();
        }
        if (numSamples == 0) revert ZeroSamples();
        _checkCid(cid);

        _commitments[taskId][round][msg.sender] = REVEALED;
        uint32 reveals = ++r.reveals;
        emit UpdateRevealed(taskId, round, msg.sender, cid, updateDigest, numSamples);

        if (reveals == r.commits) _schedule(taskId, task, round, r.startsAt, r.commitEnd, uint64(block.timestamp));
    }

    // ---------------------------------------------------------------- challenges

    /// @inheritdoc ITrainingMarket
    function challenge(uint256 taskId, uint32 round, string calldata evidenceCid) external payable {
        Task storage task = _existingTask(taskId);
        Round storage r = _rounds[taskId][round];
        if (r.status != RoundStatus.Accepted) revert WrongRoundStatus(r.status);
        if (block.timestamp >= r.acceptedAt + task.params.challengeDuration) revert ChallengeWindowClosed();
        mapping(address => uint8) storage challengers = _challengers[taskId][round];
        if (challengers[msg.sender] != 0) revert AlreadyChallenged();
        uint256 bond = task.params.challengeBond;
        address token = _checkValue(taskId, bond);
        _checkCid(evidenceCid);
        challengers[msg.sender] = CHALLENGE_OPEN;
        r.challenges += 1;
        task.challengeBonds += bond;
        emit RoundChallenged(taskId, round, msg.sender, evidenceCid);
        if (token != address(0)) _pullExact(token, bond);
    }

    /// @inheritdoc ITrainingMarket
    function resolveChallenge(uint256 taskId, uint32 round, address winner) external {
        Task storage task = _existingTask(taskId);
        if (msg.sender != task.params.arbiter) revert NotArbiter(msg.sender);
        Round storage r = _rounds[taskId][round];
        if (r.status != RoundStatus.Accepted || r.challenges == 0 || r.outcome != ChallengeOutcome.None) {
            revert NoChallenge();
        }
        uint64 windowEnd = r.acceptedAt + task.params.challengeDuration;
        if (block.timestamp >= windowEnd + task.params.challengeDuration) revert ChallengeWindowClosed();
        uint256 bond = task.params.challengeBond;
        if (winner == address(0)) {
            // Rejecting every challenge must wait until no more can come.
            if (block.timestamp < windowEnd) revert ChallengeWindowOpen(windowEnd);
            r.outcome = ChallengeOutcome.Rejected;
            uint256 lost = bond * r.challenges;
            task.challengeBonds -= lost;
            task.burned += lost;
            emit ChallengeResolved(taskId, round, address(0), 0);
            return;
        }
        mapping(address => uint8) storage challengers = _challengers[taskId][round];
        if (challengers[winner] != CHALLENGE_OPEN) revert NotAChallenger(winner);
        r.outcome = ChallengeOutcome.Upheld;
        challengers[winner] = CHALLENGE_SETTLED;
        uint256 slashedTotal = 0;
        address[] storage validators = _validators[taskId];
        for (uint256 i = 0; i < validators.length; i++) {
            address validator = validators[i];
            if (_proposals[taskId][round][validator] != r.acceptedHash) continue;
            Validator storage info = _validatorInfo[taskId][validator];
            uint256 slashed = info.bond;
            if (slashed == 0) continue;
            info.bond = 0;
            info.bonded = false;
            task.bonds -= slashed;
            slashedTotal += slashed;
            emit ValidatorSlashed(taskId, round, validator, slashed);
        }
        uint256 reward = slashedTotal / UPHELD_REWARD_DIVISOR;
        task.burned += slashedTotal - reward;
        task.challengeBonds -= bond;
        uint256 payout = bond + reward;
        _credit(taskId, winner, payout);
        emit ChallengeResolved(taskId, round, winner, payout);
        _halt(taskId, task, round);
    }

    /// @inheritdoc ITrainingMarket
    function withdrawChallengeBond(uint256 taskId, uint32 round) external nonReentrant {
        Task storage task = _existingTask(taskId);
        Round storage r = _rounds[taskId][round];
        mapping(address => uint8) storage challengers = _challengers[taskId][round];
        if (challengers[msg.sender] != CHALLENGE_OPEN || r.outcome == ChallengeOutcome.Rejected) {
            revert NothingToWithdraw();
        }
        // Returned when the round was upheld (for another winner), dismissed unresolved, or voided by a halt.
        if (r.outcome == ChallengeOutcome.None && r.status != RoundStatus.Voided) {
            revert ChallengePending(r.acceptedAt + 2 * task.params.challengeDuration);
        }
        challengers[msg.sender] = CHALLENGE_SETTLED;
        uint256 bond = task.params.challengeBond;
        task.challengeBonds -= bond;
        emit ChallengeBondReturned(taskId, round, msg.sender, bond);
        _pay(taskId, msg.sender, bond);
    }

    /// @inheritdoc ITrainingMarket
    function forfeitUnrevealed(uint256 taskId, uint32 round, address account) external {
        Task storage task = _existingTask(taskId);
        if (!_forfeitable(taskId, task, round, account)) revert NothingToForfeit();
        _forfeit(taskId, task, round, account, msg.sender);
    }

    // ---------------------------------------------------------------- settlement

    /// @inheritdoc ITrainingMarket
    function finalizeRound(uint256 taskId, uint32 round) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _rounds[taskId][round];
        if (r.status != RoundStatus.Accepted) revert WrongRoundStatus(r.status);
        uint64 challengeEnd = r.acceptedAt + task.params.challengeDuration;
        if (block.timestamp < challengeEnd) revert ChallengeWindowOpen(challengeEnd);
        // Rounds settle in order: the latest earlier round that did not fail must be settled.
        for (uint32 k = round; k > 0;) {
            k -= 1;
            RoundStatus earlier = _rounds[taskId][k].status;
            if (earlier == RoundStatus.Accepted) revert PreviousRoundPending(k);
            if (earlier != RoundStatus.Failed) break;
        }
        if (r.challenges != 0 && r.outcome == ChallengeOutcome.None) {
            uint64 arbitrationEnd = challengeEnd + task.params.challengeDuration;
            if (block.timestamp < arbitrationEnd) revert ChallengePending(arbitrationEnd);
            // The arbiter let the window pass: the challenges are dismissed and their bonds can be withdrawn.
            r.outcome = ChallengeOutcome.Dismissed;
            emit ChallengesDismissed(taskId, round, r.challenges);
        }

        r.status = RoundStatus.Finalized;
        r.finalizedAt = uint64(block.timestamp);
        task.reserved -= r.rewardTotal;
        task.unclaimed += r.rewardTotal;
        task.pendingRounds -= 1;
        address[] storage validators = _validators[taskId];
        for (uint256 i = 0; i < validators.length; i++) {
            if (_proposals[taskId][round][validators[i]] != r.acceptedHash) {
                _slashValidator(taskId, task, round, validators[i]);
            }
        }
        emit RoundFinalized(taskId, round, r.rewardTotal);
    }

    /// @inheritdoc ITrainingMarket
    function claim(
        uint256 taskId,
        uint32 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external nonReentrant {
        Task storage task = _existingTask(taskId);
        Round storage r = _rounds[taskId][round];
        if (r.status != RoundStatus.Finalized) revert WrongRoundStatus(r.status);
        mapping(uint256 => uint256) storage bitmap = _claimedBitmap[taskId][round];
        if (_isSet(bitmap, index)) revert AlreadyClaimed();
        if (!MerkleProof.verifyCalldata(proof, r.rewardsRoot, _leaf(index, account, amount))) revert InvalidProof();
        uint256 available = r.rewardTotal - r.rewardClaimed;
        if (amount > available) revert ExceedsRoundRewards(available, amount);

        _set(bitmap, index);
        r.rewardClaimed += amount;
        task.unclaimed -= amount;
        emit RewardClaimed(taskId, round, account, index, amount);
        _pay(taskId, account, amount);
    }

    /// @inheritdoc ITrainingMarket
    function slashContributor(
        uint256 taskId,
        uint32 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _rounds[taskId][round];
        if (r.status != RoundStatus.Finalized) revert WrongRoundStatus(r.status);
        if (block.timestamp > r.finalizedAt + task.params.challengeDuration) revert SlashWindowClosed();
        mapping(uint256 => uint256) storage bitmap = _slashedBitmap[taskId][round];
        // Several validators may race to apply the same leaf: the later ones do nothing, at little gas.
        if (_isSet(bitmap, index)) return;
        if (!MerkleProof.verifyCalldata(proof, r.slashRoot, _leaf(index, account, amount))) revert InvalidProof();

        _set(bitmap, index);
        Contributor storage contributor = _contributors[taskId][account];
        uint256 slashed = amount < contributor.stake ? amount : contributor.stake;
        contributor.stake -= uint128(slashed);
        task.stakes -= slashed;
        task.escrow += slashed;
        if (contributor.stake == 0 && contributor.joined) {
            // Nothing left to lose: the slot goes, and taking part again means joining with a new stake.
            contributor.joined = false;
            task.activeContributors -= 1;
        }
        emit ContributorSlashed(taskId, round, account, slashed);
    }

    /// @inheritdoc ITrainingMarket
    function withdrawCredit() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credits[msg.sender] = 0;
        totalCredits -= amount;
        emit CreditWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @inheritdoc ITrainingMarket
    function withdrawTokenCredit(address token) external nonReentrant {
        uint256 amount = tokenCredits[token][msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        tokenCredits[token][msg.sender] = 0;
        totalTokenCredits[token] -= amount;
        emit TokenCreditWithdrawn(token, msg.sender, amount);
        IERC20(token).safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- views

    /// @notice The phase of the task's current round.
    function phase(uint256 taskId) external view returns (Phase) {
        Task storage task = _existingTask(taskId);
        if (task.status != TaskStatus.Active) return Phase.Closed;
        return _phase(task, _rounds[taskId][task.currentRound]);
    }

    /// @notice A task's parameters, status and money buckets.
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _existingTask(taskId);
    }

    /// @notice A round's schedule, counters, status and accepted result.
    function getRound(uint256 taskId, uint32 round) external view returns (Round memory) {
        _existingTask(taskId);
        return _rounds[taskId][round];
    }

    /// @notice The task's validators in the order given at creation.
    function validatorsOf(uint256 taskId) external view returns (address[] memory) {
        return _validators[taskId];
    }

    function validatorInfo(uint256 taskId, address account) external view returns (Validator memory) {
        return _validatorInfo[taskId][account];
    }

    function contributorInfo(uint256 taskId, address account) external view returns (Contributor memory) {
        return _contributors[taskId][account];
    }

    /// @notice The commitment of a contributor in a round; bytes32(uint256(1)) once revealed.
    function commitmentOf(uint256 taskId, uint32 round, address account) external view returns (bytes32) {
        return _commitments[taskId][round][account];
    }

    /// @notice The proposal hash a validator proposed for a round, or zero.
    function proposalOf(uint256 taskId, uint32 round, address account) external view returns (bytes32) {
        return _proposals[taskId][round][account];
    }

    function isClaimed(uint256 taskId, uint32 round, uint256 index) external view returns (bool) {
        return _isSet(_claimedBitmap[taskId][round], index);
    }

    function isSlashed(uint256 taskId, uint32 round, uint256 index) external view returns (bool) {
        return _isSet(_slashedBitmap[taskId][round], index);
    }

    /// @notice The ERC20 token a task's buckets are held in; address(0) for native ETH.
    function tokenOf(uint256 taskId) external view returns (address) {
        _existingTask(taskId);
        return _tokens[taskId];
    }

    /// @notice Wei (or token units, see tokenOf) the contract holds for a task, all buckets together.
    function taskHoldings(uint256 taskId) external view returns (uint256) {
        Task storage t = _existingTask(taskId);
        return t.escrow + t.reserved + t.unclaimed + t.stakes + t.bonds + t.challengeBonds + t.burned;
    }

    // ---------------------------------------------------------------- internals

    function _existingTask(uint256 taskId) private view returns (Task storage task) {
        task = _tasks[taskId];
        if (task.status == TaskStatus.None) revert UnknownTask(taskId);
    }

    function _activeTask(uint256 taskId) private view returns (Task storage task) {
        task = _existingTask(taskId);
        if (task.status != TaskStatus.Active) revert TaskNotActive(taskId);
    }

    function _phase(Task storage task, Round storage r) private view returns (Phase) {
        if (task.status != TaskStatus.Active || r.status != RoundStatus.Open) return Phase.Closed;
        if (block.timestamp < r.startsAt) return Phase.Join;
        if (block.timestamp < r.commitEnd) return Phase.Commit;
        if (block.timestamp < r.revealEnd) return Phase.Reveal;
        if (block.timestamp < r.validateEnd) return Phase.Validate;
        return Phase.Expired;
    }

    /// Reverts unless the round stored as `roundPlusOne` (0: none) can no longer change a stake.
    function _checkStakeFree(uint256 taskId, Task storage task, address account, uint32 roundPlusOne)
        private
        view
    {
        if (roundPlusOne == 0) return;
        uint32 round = roundPlusOne - 1;
        Round storage r = _rounds[taskId][round];
        if (r.status == RoundStatus.Voided) {
            // A halt voids the challenged round and later ones only: the last round before them that the
            // account committed to and that was not failed can still slash, and it settles after every earlier one.
            mapping(uint32 => mapping(address => bytes32)) storage commitments = _commitments[taskId];
            do {
                if (round == 0) return;
                round -= 1;
                r = _rounds[taskId][round];
            } while (
                r.status == RoundStatus.Voided || r.status == RoundStatus.Failed
                    || commitments[round][account] == bytes32(0)
            );
        }
        bool free;
        if (r.status == RoundStatus.Failed || r.status == RoundStatus.Voided) free = true;
        else if (r.status == RoundStatus.Finalized) free = block.timestamp > r.finalizedAt + task.params.challengeDuration;
        // An open round of a task that is no longer active will never be validated.
        else free = r.status == RoundStatus.Open && task.status != TaskStatus.Active;
        if (!free) revert StakeLocked(round);
    }

    /// Whether `account` committed in `round` and never opened it although the task was active through the
    /// whole reveal phase (a task cancelled or halted before the reveal end forfeits nobody).
    function _forfeitable(uint256 taskId, Task storage task, uint32 round, address account)
        private
        view
        returns (bool)
    {
        bytes32 commitment = _commitments[taskId][round][account];
        if (commitment == bytes32(0) || commitment == REVEALED || commitment == FORFEITED) return false;
        uint64 revealEnd = _rounds[taskId][round].revealEnd;
        if (block.timestamp < revealEnd) return false;
        return task.closedAt == 0 || revealEnd <= task.closedAt;
    }

    /// Takes the whole stake of a contributor that did not open its commitment: a bounty to `caller`, the rest
    /// burned; the contributor loses its slot.
    function _forfeit(uint256 taskId, Task storage task, uint32 round, address account, address caller) private {
        _commitments[taskId][round][account] = FORFEITED;
        Contributor storage contributor = _contributors[taskId][account];
        uint256 amount = contributor.stake;
        contributor.stake = 0;
        task.stakes -= amount;
        if (contributor.joined) {
            contributor.joined = false;
            task.activeContributors -= 1;
        }
        uint256 bounty = amount / FORFEIT_BOUNTY_DIVISOR;
        task.burned += amount - bounty;
        if (bounty != 0) _credit(taskId, caller, bounty);
        emit CommitmentForfeited(taskId, round, account, amount, caller, bounty);
    }

    function _startRound(uint256 taskId, Task storage task, uint32 round, uint64 startsAt) private {
        task.currentRound = round;
        uint64 commitEnd = startsAt + task.params.commitDuration;
        _schedule(taskId, task, round, startsAt, commitEnd, commitEnd + task.params.revealDuration);
    }

    /// Sets a round's phase ends; the validation phase always gets its full duration after the reveal end.
    function _schedule(
        uint256 taskId,
        Task storage task,
        uint32 round,
        uint64 startsAt,
        uint64 commitEnd,
        uint64 revealEnd
    ) private {
        Round storage r = _rounds[taskId][round];
        uint64 validateEnd = revealEnd + task.params.validationDuration;
        r.startsAt = startsAt;
        r.commitEnd = commitEnd;
        r.revealEnd = revealEnd;
        r.validateEnd = validateEnd;
        emit RoundScheduled(taskId, round, startsAt, commitEnd, revealEnd, validateEnd);
    }

    function _nextRound(uint256 taskId, Task storage task) private {
        uint32 next = task.currentRound + 1;
        if (next == task.params.numRounds) {
            task.currentRound = next;
            task.status = TaskStatus.Completed;
            task.closedAt = uint64(block.timestamp);
            emit TaskCompleted(taskId);
        } else {
            _startRound(taskId, task, next, uint64(block.timestamp));
        }
    }

    /// Voids the challenged round and every later accepted round; the task stops.
    function _halt(uint256 taskId, Task storage task, uint32 fromRound) private {
        task.status = TaskStatus.Halted;
        if (task.closedAt == 0) task.closedAt = uint64(block.timestamp); // a cancelled task stopped at the cancel
        uint32 last = task.currentRound < task.params.numRounds ? task.currentRound : task.params.numRounds - 1;
        for (uint32 round = fromRound; round <= last; round++) {
            Round storage r = _rounds[taskId][round];
            if (r.status != RoundStatus.Accepted) continue;
            r.status = RoundStatus.Voided;
            task.reserved -= r.rewardTotal;
            task.escrow += r.rewardTotal;
            task.pendingRounds -= 1;
            emit RoundVoided(taskId, round);
        }
        emit TaskHalted(taskId, fromRound);
    }

    function _slashValidator(uint256 taskId, Task storage task, uint32 round, address account) private {
        Validator storage info = _validatorInfo[taskId][account];
        uint256 slashed = task.params.validatorSlash < info.bond ? task.params.validatorSlash : info.bond;
        if (slashed == 0) return;
        info.bond -= uint128(slashed);
        info.bonded = false;
        task.bonds -= slashed;
        task.escrow += slashed;
        emit ValidatorSlashed(taskId, round, account, slashed);
    }

    function _refund(uint256 taskId, Task storage task) private {
        uint256 amount = task.escrow;
        if (amount == 0) return;
        task.escrow = 0;
        emit EscrowRefunded(taskId, task.owner, amount);
        _pay(taskId, task.owner, amount);
    }

    /// Checks what a paying call brought: exactly `required` wei on an ETH task, no wei on a token task (whose
    /// tokens the caller pulls with _pullExact after its effects). Returns the task's token.
    function _checkValue(uint256 taskId, uint256 required) private view returns (address token) {
        token = _tokens[taskId];
        if (token == address(0)) {
            if (msg.value != required) revert WrongAmount(required, msg.value);
        } else if (msg.value != 0) {
            revert WrongAmount(0, msg.value);
        }
    }

    /// Pulls `amount` of `token` from the caller; returns what the contract's balance actually grew by.
    function _pull(address token, uint256 amount) private returns (uint256 received) {
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        received = IERC20(token).balanceOf(address(this)) - before;
    }

    /// Pulls exactly `amount`: a stake or bond is booked at its nominal size, so a token that delivers less
    /// (a transfer fee) would leave the bucket unbacked.
    function _pullExact(address token, uint256 amount) private {
        uint256 received = _pull(token, amount);
        if (received != amount) revert TokenShortfall(token, amount, received);
    }

    /// Pays `amount` of the task's currency to `to`.
    function _pay(uint256 taskId, address to, uint256 amount) private {
        address token = _tokens[taskId];
        if (token == address(0)) _send(to, amount);
        else IERC20(token).safeTransfer(to, amount);
    }

    /// Credits `amount` of the task's currency to `account`, withdrawn later with withdrawCredit(ETH) or
    /// withdrawTokenCredit.
    function _credit(uint256 taskId, address account, uint256 amount) private {
        address token = _tokens[taskId];
        if (token == address(0)) {
            credits[account] += amount;
            totalCredits += amount;
        } else {
            tokenCredits[token][account] += amount;
            totalTokenCredits[token] += amount;
        }
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    function _checkCid(string calldata cid) private pure {
        uint256 length = bytes(cid).length;
        if (length == 0 || length > MAX_CID_BYTES) revert BadCid();
    }

    /// The OpenZeppelin StandardMerkleTree leaf of (uint256 index, address account, uint256 amount).
    function _leaf(uint256 index, address account, uint256 amount) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, account, amount))));
    }

    function _isSet(mapping(uint256 => uint256) storage bitmap, uint256 index) private view returns (bool) {
        return bitmap[index >> 8] & (1 << (index & 0xff)) != 0;
    }

    function _set(mapping(uint256 => uint256) storage bitmap, uint256 index) private {
        bitmap[index >> 8] |= 1 << (index & 0xff);
    }
}
