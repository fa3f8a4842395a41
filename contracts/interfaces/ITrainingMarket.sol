// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title The cotrain training market
/// @notice Task owners escrow a reward budget for a federated training job; contributors stake, commit and reveal
/// model updates round by round; the task's validators propose each round's aggregate and a Merkle root of rewards;
/// a quorum of identical proposals accepts the round; after a challenge window contributors claim with proofs.
/// @dev Everything an auditor needs to rebuild a task's history is in the events: file locations (CIDs) live only in
/// events, their digests are also kept in storage where the contract checks them.
interface ITrainingMarket {
    enum TaskStatus {
        None,
        Active,
        Completed,
        Cancelled,
        Halted
    }

    enum RoundStatus {
        Open,
        Accepted,
        Finalized,
        Failed,
        Voided
    }

    /// @notice What became of a round's challenges: none resolved yet, every one rejected (bonds burned), upheld
    /// naming a winner (the other challengers withdraw their bonds), or dismissed because the arbiter let the
    /// arbitration window pass (every challenger withdraws its bond).
    enum ChallengeOutcome {
        None,
        Rejected,
        Upheld,
        Dismissed
    }

    /// @notice The phase of a task's current round, derived from its schedule and the clock.
    enum Phase {
        Join,
        Commit,
        Reveal,
        Validate,
        Expired,
        Closed
    }

    /// @param specDigest sha256 of the task-spec file (which also names the initial model and its digest)
    /// @param numRounds how many training rounds the budget pays for (1 to MAX_ROUNDS)
    /// @param minContributors fewest reveals for a round to be validated
    /// @param maxContributors most commits a round takes
    /// @param joinDuration seconds before round 0's commit phase opens (it opens early once maxContributors joined)
    /// @param commitDuration seconds to train and commit (ends early once every expected contributor committed)
    /// @param revealDuration seconds to reveal (ends early once every committer revealed)
    /// @param validationDuration seconds for validators to propose (ends early once a quorum agrees)
    /// @param challengeDuration seconds an accepted round can be challenged, then seconds the arbiter has to
    /// resolve, and seconds a contributor can be slashed after finalization; at least validationDuration
    /// @param quorum identical proposals needed to accept a round: more than half the validators
    /// @param contributorStake wei each contributor locks while taking part (> 0); all of it is forfeited by a
    /// commitment left unopened
    /// @param validatorBond wei each validator locks before proposing (> 0)
    /// @param validatorSlash wei a validator loses per round it dissented from or missed (at most validatorBond)
    /// @param challengeBond wei a challenger locks (> 0)
    /// @param arbiter who resolves challenges: neither the task owner nor one of its validators (a multisig or a
    /// committee contract is fine); it may not contribute
    struct TaskParams {
        bytes32 specDigest;
        uint32 numRounds;
        uint32 minContributors;
        uint32 maxContributors;
        uint32 joinDuration;
        uint32 commitDuration;
        uint32 revealDuration;
        uint32 validationDuration;
        uint32 challengeDuration;
        uint32 quorum;
        uint256 contributorStake;
        uint256 validatorBond;
        uint256 validatorSlash;
        uint256 challengeBond;
        address arbiter;
    }

    /// @notice What a validator proposes for a round. Two proposals agree when their digests, roots and reward
    /// totals agree; CIDs only locate the files.
    /// @param modelDigest sha256 of the new global model file
    /// @param recordDigest sha256 of the round record (inputs, verdicts, reasons, scores, weights, rule)
    /// @param rewardsRoot StandardMerkleTree root over (uint256 index, address account, uint256 amount) rewards
    /// @param slashRoot the same kind of root over stake slashes, or zero for none
    /// @param rewardTotal sum of the rewards leaves; at most the round budget
    struct Proposal {
        bytes32 modelDigest;
        bytes32 recordDigest;
        bytes32 rewardsRoot;
        bytes32 slashRoot;
        uint256 rewardTotal;
        string modelCid;
        string recordCid;
    }

    event TaskCreated(
        uint256 indexed taskId,
        address indexed owner,
        string specCid,
        TaskParams params,
        address[] validators,
        uint256 budget
    );
    /// @notice The task's budget, stakes and bonds are in this ERC20 token (not emitted for ETH tasks).
    event TaskToken(uint256 indexed taskId, address indexed token);
    event TaskCancelled(uint256 indexed taskId);
    event TaskCompleted(uint256 indexed taskId);
    event TaskHalted(uint256 indexed taskId, uint32 fromRound);
    event EscrowRefunded(uint256 indexed taskId, address indexed owner, uint256 amount);

    event TokenCreditWithdrawn(address indexed token, address indexed account, uint256 amount);
    event ValidatorBonded(uint256 indexed taskId, address indexed validator, uint256 amount);
    event BondWithdrawn(uint256 indexed taskId, address indexed validator, uint256 amount);
    event ContributorJoined(uint256 indexed taskId, address indexed contributor, uint256 stake);
    event ContributorLeft(uint256 indexed taskId, address indexed contributor, uint256 refund);

    /// @notice A round's schedule: emitted when the round starts and again whenever a phase ends early.
    event RoundScheduled(
        uint256 indexed taskId,
        uint32 indexed round,
        uint64 startsAt,
        uint64 commitEnd,
        uint64 revealEnd,
        uint64 validateEnd
    );
    event UpdateCommitted(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed contributor,
        bytes32 commitment
    );
    event UpdateRevealed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed contributor,
        string cid,
        bytes32 updateDigest,
        uint64 numSamples
    );
    event RoundProposed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed validator,
        bytes32 proposalHash,
        Proposal proposal
    );
    event RoundAccepted(
        uint256 indexed taskId,
        uint32 indexed round,
        bytes32 proposalHash,
        bytes32 modelDigest,
        uint256 rewardTotal
    );
    event RoundFailed(uint256 indexed taskId, uint32 indexed round, uint32 reveals);
    event RoundChallenged(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed challenger,
        string evidenceCid
    );
    /// @param winner the challenger the arbiter upheld, or address(0) when it rejected every challenge
    /// @param payout wei credited to the winner: its bond back plus slashed bonds / UPHELD_REWARD_DIVISOR
    event ChallengeResolved(uint256 indexed taskId, uint32 indexed round, address winner, uint256 payout);
    /// @notice The arbiter let the arbitration window pass: every challenger may withdraw its bond.
    event ChallengesDismissed(uint256 indexed taskId, uint32 indexed round, uint32 challenges);
    event ChallengeBondReturned(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed challenger,
        uint256 amount
    );
    /// @notice A commitment left unopened after the reveal phase cost its contributor the whole stake: `bounty`
    /// credited to `caller`, the rest burned.
    event CommitmentForfeited(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed contributor,
        uint256 amount,
        address caller,
        uint256 bounty
    );
    event RoundVoided(uint256 indexed taskId, uint32 indexed round);
    event RoundFinalized(uint256 indexed taskId, uint32 indexed round, uint256 rewardTotal);

    event RewardClaimed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed account,
        uint256 index,
        uint256 amount
    );
    event ContributorSlashed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed contributor,
        uint256 amount
    );
    event ValidatorSlashed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed validator,
        uint256 amount
    );
    event CreditWithdrawn(address indexed account, uint256 amount);

    error EmptyBudget();
    error BadRoundCount(uint32 numRounds);
    error BadContributorRange(uint32 minContributors, uint32 maxContributors);
    error BadDuration();
    error BadValidatorCount(uint256 count);
    error BadValidator(address validator);
    error BadQuorum(uint32 quorum, uint256 validators);
    error BadSlash(uint256 slash, uint256 bond);
    error BadCid();
    error UnknownTask(uint256 taskId);
    error TaskNotActive(uint256 taskId);
    error TaskStillActive(uint256 taskId);
    error NotOwner(address account);
    error NotArbiter(address account);
    error NotValidator(address account);
    error ConflictOfInterest(address account);
    error WrongAmount(uint256 expected, uint256 sent);
    error WrongRound(uint32 current, uint32 given);
    error WrongPhase(Phase expected, Phase actual);
    error WrongRoundStatus(RoundStatus status);
    error AlreadyJoined();
    error NotJoined();
    error StakeLocked(uint32 round);
    error AlreadyBonded();
    error NotBonded();
    error RoundsPending(uint32 pendingRounds);
    error EmptyCommitment();
    error RoundFull(uint32 maxContributors);
    error AlreadyCommitted();
    error NotCommitted();
    error AlreadyRevealed();
    error CommitmentMismatch();
    error ZeroSamples();
    error AlreadyProposed();
    error TooFewReveals(uint32 reveals, uint32 minContributors);
    error RewardsOverBudget(uint256 rewardTotal, uint256 roundBudget);
    error RoundNotExpired();
    error ChallengeWindowClosed();
    error ChallengeWindowOpen(uint64 endsAt);
    error AlreadyChallenged();
    error NoChallenge();
    error ChallengePending(uint64 arbitrationEndsAt);
    error PreviousRoundPending(uint32 round);
    error AlreadyClaimed();
    error BadArbiter(address arbiter);
    error BadBond();
    error RoundHasReveals(uint32 round);
    error UnopenedCommitment(uint32 round);
    error NothingToForfeit();
    error NotAChallenger(address account);
    error InvalidProof();
    error ExceedsRoundRewards(uint256 available, uint256 amount);
    error SlashWindowClosed();
    error NothingToWithdraw();
    error TransferFailed(address to, uint256 amount);
    error BadToken(address token);
    /// A token stake or bond arrived short (a fee-on-transfer token): `received` of `expected`.
    error TokenShortfall(address token, uint256 expected, uint256 received);

    /// @notice Posts a task and escrows msg.value as its reward budget; round 0 opens after the join phase.
    /// @param specCid where the task-spec file is stored (its sha256 is params.specDigest)
    /// @param validators the accounts that validate every round; they may not contribute
    /// @return taskId the new task's id, counting from 1
    function createTask(TaskParams calldata params, string calldata specCid, address[] calldata validators)
        external
        payable
        returns (uint256 taskId);

    /// @notice As createTask, but the task's budget, stakes and bonds are in the ERC20 `token`: pulls `budget`
    /// from the caller (approve it first) and escrows what actually arrived (less for a fee-on-transfer token).
    /// On such a task join, bondValidator and challenge take no ETH: they pull the exact stake or bond in the
    /// token and revert with TokenShortfall when less arrives; every payout is in the token.
    function createTokenTask(
        TaskParams calldata params,
        string calldata specCid,
        address[] calldata validators,
        address token,
        uint256 budget
    ) external returns (uint256 taskId);

    /// @notice Owner only, while the task is active and its current round has no reveals (revealed updates are
    /// public, so that round must be validated or fail first): stops the task and refunds the escrow not yet
    /// earned. Rounds already accepted stay payable; the open round is abandoned, forfeiting nobody.
    function cancelTask(uint256 taskId) external;

    /// @notice Owner only, once the task is no longer active: pays out escrow left over (unspent round budgets,
    /// slashes, voided rounds).
    function withdrawRefund(uint256 taskId) external;

    /// @notice Locks the validator bond, or tops it up after a slash (msg.value must equal what is missing). Only
    /// the task's validators, while it is active; only a full bond may propose.
    function bondValidator(uint256 taskId) external payable;

    /// @notice Returns a validator's bond once the task is over and no accepted round awaits finalization.
    function withdrawBond(uint256 taskId) external;

    /// @notice Joins an active task by locking exactly the contributor stake.
    function join(uint256 taskId) external payable;

    /// @notice Leaves a task and gets the stake back, once every round the caller committed to is settled and,
    /// for a finalized round, its slash window has passed. A commitment left unopened forfeits the stake instead.
    function leave(uint256 taskId) external;

    /// @notice Commits to an update in the commit phase:
    /// commitment = keccak256(abi.encode(contributor, taskId, round, updateDigest, salt)). Reverts while the
    /// caller's previous commitment is unopened (forfeit it first).
    function commit(uint256 taskId, uint32 round, bytes32 commitment) external;

    /// @notice Reveals the committed update in the reveal phase.
    /// @param cid where the update file is stored
    /// @param updateDigest sha256 of the update file
    /// @param numSamples training samples behind the update (the file's metadata must say the same)
    function reveal(
        uint256 taskId,
        uint32 round,
        string calldata cid,
        bytes32 updateDigest,
        uint64 numSamples,
        bytes32 salt
    ) external;

    /// @notice A validator's proposal for a round, between the reveal deadline and the validation deadline.
    /// The quorum-th identical proposal accepts the round and opens the next one.
    function propose(uint256 taskId, uint32 round, Proposal calldata proposal) external;

    /// @notice Anyone: closes the current round without rewards when too few updates were revealed, or when no
    /// quorum formed by the validation deadline (validators who proposed nothing then lose validatorSlash).
    function failRound(uint256 taskId) external;

    /// @notice Anyone, once per account per round: disputes an accepted round within its challenge window by
    /// locking the challenge bond. Any number of challenges may be open; none blocks another.
    /// @param evidenceCid where the challenger's evidence (e.g. a replay report) is stored
    function challenge(uint256 taskId, uint32 round, string calldata evidenceCid) external payable;

    /// @notice Arbiter only, before the arbitration window (challengeDuration after the challenge window) ends.
    /// Upheld (`winner` names an open challenge): the whole bonds of the round's proposers are slashed, the winner
    /// is credited its bond plus slashed / UPHELD_REWARD_DIVISOR and the rest burns, the other challengers
    /// withdraw their bonds, the task halts, and the round and every later accepted round are voided (their
    /// rewards return to escrow). Rejected (`winner` zero, only after the challenge window): every challenge bond
    /// of the round burns.
    function resolveChallenge(uint256 taskId, uint32 round, address winner) external;

    /// @notice A challenger's bond back, when its round was upheld for another winner, dismissed, or voided.
    function withdrawChallengeBond(uint256 taskId, uint32 round) external;

    /// @notice Anyone, after the reveal phase of a round the task was active through: takes the whole stake of a
    /// contributor that committed and did not reveal; the caller is credited stake / FORFEIT_BOUNTY_DIVISOR, the
    /// rest burns, and the contributor loses its slot.
    function forfeitUnrevealed(uint256 taskId, uint32 round, address account) external;

    /// @notice Anyone, after the challenge window (and any arbitration window) of an accepted round whose
    /// predecessor is settled: makes its rewards claimable and slashes validators that dissented or were absent.
    /// Rounds finalize in order. Unresolved challenges are dismissed (their bonds can be withdrawn).
    function finalizeRound(uint256 taskId, uint32 round) external;

    /// @notice Anyone: pays a finalized round's reward leaf (index, account, amount) to account.
    function claim(
        uint256 taskId,
        uint32 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external;

    /// @notice Anyone, within the slash window of a finalized round: applies a slash leaf to a contributor's stake
    /// (capped at what is left); the wei go to the task escrow. A stake slashed to zero loses its slot. A leaf
    /// already applied is a no-op.
    function slashContributor(
        uint256 taskId,
        uint32 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external;

    /// @notice Pays out the caller's credits (challenge payouts, forfeit bounties).
    function withdrawCredit() external;

    /// @notice Pays out the caller's credits in `token` (from token tasks).
    function withdrawTokenCredit(address token) external;
}
