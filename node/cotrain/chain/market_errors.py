"""Every custom error of the TrainingMarket in words, for the messages users read.

A test checks that each error in the shipped ABI has words here and that nothing here names an error the ABI
lacks, so a new error in the contract cannot reach a user as a bare name.
"""

from __future__ import annotations

REVERT_WORDS: dict[str, str] = {
    "EmptyBudget": "a task needs a reward budget above zero",
    "BadRoundCount": "the number of rounds is zero or above the market's maximum",
    "BadContributorRange": "the contributor range is empty or its minimum is zero",
    "BadDuration": (
        "a phase of the task has a zero duration, or its challenge phase is shorter than its validation phase"
    ),
    "BadValidatorCount": "the task names no validators or more than the market allows",
    "BadValidator": "a validator address is zero or listed twice",
    "BadQuorum": "the quorum must be more than half the validators and at most all of them",
    "BadSlash": "the validator slash exceeds the validator bond",
    "BadCid": "the CID is empty or longer than the market allows",
    "UnknownTask": "there is no task with this id on this market",
    "TaskNotActive": "the task is no longer active (completed or cancelled)",
    "TaskStillActive": "the task is still active; this is possible only once it has ended",
    "NotOwner": "only the task's owner may do this",
    "NotArbiter": "only the task's arbiter may resolve a challenge",
    "NotValidator": "this account is not one of the task's validators",
    "ConflictOfInterest": "a validator or the arbiter of the task cannot also contribute to it",
    "WrongAmount": "the value sent differs from what the task asks",
    "WrongRound": "the round given is not the task's current round",
    "WrongPhase": "the round is not in the phase this needs",
    "WrongRoundStatus": "the round's status does not allow this",
    "AlreadyJoined": "this account already joined the task",
    "NotJoined": "this account has not joined the task",
    "StakeLocked": "the stake stays locked until this round can no longer slash it",
    "AlreadyBonded": "this validator already posted its bond",
    "NotBonded": "this validator has not posted its bond",
    "RoundsPending": "some rounds of the task are not settled yet",
    "EmptyCommitment": "the commitment is empty",
    "RoundFull": "the round already has as many commitments as the task allows",
    "AlreadyCommitted": "this account already committed in this round",
    "NotCommitted": "this account did not commit in this round",
    "AlreadyRevealed": "this account already revealed in this round",
    "CommitmentMismatch": "the revealed update, sample count or salt do not match the commitment",
    "ZeroSamples": "an update must be trained on at least one sample",
    "AlreadyProposed": "this validator already proposed for this round",
    "TooFewReveals": "too few updates were revealed for the round to be validated",
    "RewardsOverBudget": "the proposed rewards exceed the round's budget",
    "RoundNotExpired": "the round has not expired yet",
    "ChallengeWindowClosed": "the challenge window of the round has closed",
    "ChallengeWindowOpen": "the round's challenge window is still open",
    "AlreadyChallenged": "this account already challenged this round",
    "NoChallenge": "the round has no challenge left to resolve",
    "ChallengePending": "the round's challenges await the arbiter until the time given",
    "PreviousRoundPending": "an earlier round must be settled first",
    "AlreadyClaimed": "this reward was already claimed",
    "BadArbiter": "the arbiter must be an account other than the task owner and its validators",
    "BadBond": "the contributor stake, the validator bond and the challenge bond must all be above zero",
    "RoundHasReveals": (
        "the round has revealed updates, so it must be validated or fail before the task can be cancelled"
    ),
    "UnopenedCommitment": (
        "this account's commitment of that round was never revealed: its stake must be forfeited first"
    ),
    "NothingToForfeit": (
        "there is no unrevealed commitment to forfeit: none was made, it was revealed or already forfeited, "
        "or the reveal phase is not over"
    ),
    "NotAChallenger": "this account has no open challenge of the round",
    "InvalidProof": "the Merkle proof does not match the round's root",
    "ExceedsRoundRewards": "the amount exceeds what is left of the round's rewards",
    "SlashWindowClosed": "the window for applying the round's slashes has closed",
    "NothingToWithdraw": "there is nothing to withdraw",
    "TransferFailed": "the recipient refused the payment",
    "ReentrancyGuardReentrantCall": "a call re-entered the market while it was paying out",
    "BadToken": "a token task needs a token contract address, not the zero address",
    "TokenShortfall": "the token delivered less than the stake or bond (a transfer fee): use another token",
    "SafeERC20FailedOperation": (
        "the token refused the transfer: allowance or balance short, or it returned false"
    ),
}
