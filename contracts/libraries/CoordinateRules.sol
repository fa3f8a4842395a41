// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice A rule was given no values.
error CoordinateRulesNoValues();
/// @notice A rule was given more than MAX_VALUES values.
error CoordinateRulesTooManyValues(uint256 count);
/// @notice A value is outside (-2**127, 2**127).
error CoordinateRulesValueOutOfRange(uint256 index, int256 value);
/// @notice A weight is outside [1, 2**64).
error CoordinateRulesWeightOutOfRange(uint256 index, uint256 weight);
/// @notice The weighted mean was given a different number of weights than values.
error CoordinateRulesLengthMismatch(uint256 values, uint256 weights);
/// @notice A trimmed mean must keep at least one value: 2 * trim < count.
error CoordinateRulesTrimTooLarge(uint256 count, uint256 trim);
/// @notice roundHalfEvenDiv was given a divisor <= 0.
error CoordinateRulesDivisorNotPositive(int256 divisor);

/// @title CoordinateRules
/// @notice One coordinate of each per-coordinate aggregation rule (weighted mean, median, trimmed mean) in exact
/// integer arithmetic, computing bit for bit what node/cotrain/consensus/coordinate.py computes, so a fraud
/// proof can recompute one coordinate of an aggregate on-chain.
/// @dev Bounds (checked; anything outside reverts): 1 <= n <= 2**16 values, each |v| < 2**127, weights
/// 1 <= w < 2**64. They keep every intermediate inside int256: |sum w*v| < 2**207, sum w < 2**80, and a sum of
/// values stays below 2**143. Every division rounds once, half to even.
/// The order statistics come from a selection (introselect: quickselect with a three-way partition and a
/// median-of-three pivot, falling back to heapsort on the remaining range after 2*log2(n) rounds), not a full
/// sort: expected O(n) comparisons instead of n*log2(n), and still O(n log n) on inputs built to defeat the
/// pivot, so no set of update values can push a fraud proof past the block gas limit. median and trimmedMean
/// permute the array they are given.
library CoordinateRules {
    uint256 internal constant MAX_VALUES = 2 ** 16;
    int256 internal constant VALUE_BOUND = 2 ** 127;
    uint256 internal constant WEIGHT_BOUND = 2 ** 64;

    /// @notice a / b rounded to the nearest integer, a tie to the even one.
    /// @param a any numerator
    /// @param b a positive divisor
    function roundHalfEvenDiv(int256 a, int256 b) internal pure returns (int256 q) {
        if (b <= 0) revert CoordinateRulesDivisorNotPositive(b);
        q = a / b; // rounds toward zero
        int256 r = a % b; // has the sign of a
        if (r < 0) {
            // floor division: 0 <= r < b (q - 1 cannot overflow: q == min needs b == 1, then r == 0)
            q -= 1;
            r += b;
        }
        int256 rest = b - r; // 2r > b compared as r > b - r, which cannot overflow
        if (r > rest || (r == rest && q & 1 != 0)) q += 1;
    }

    /// @notice round_half_even(sum w_i * v_i / sum w_i).
    /// @param values the coordinate's n values, one per update
    /// @param weights each update's sample count
    function weightedMean(int256[] memory values, uint256[] memory weights) internal pure returns (int256) {
        uint256 n = _checkCount(values.length);
        if (weights.length != n) revert CoordinateRulesLengthMismatch(n, weights.length);
        int256 total = 0;
        uint256 weightSum = 0;
        for (uint256 i; i < n; ++i) {
            int256 v = values[i];
            uint256 w = weights[i];
            if (v <= -VALUE_BOUND || v >= VALUE_BOUND) revert CoordinateRulesValueOutOfRange(i, v);
            if (w == 0 || w >= WEIGHT_BOUND) revert CoordinateRulesWeightOutOfRange(i, w);
            unchecked {
                // the bounds above keep both sums far from overflow (gas savings)
                total += int256(w) * v;
                weightSum += w;
            }
        }
        return roundHalfEvenDiv(total, int256(weightSum));
    }

    /// @notice The middle value for odd n; round_half_even((s[n/2 - 1] + s[n/2]) / 2) for even n (s sorted, 0-based).
    /// @param values the coordinate's n values, one per update (permuted in place)
    function median(int256[] memory values) internal pure returns (int256) {
        uint256 n = _checkValues(values);
        uint256 mid = n / 2;
        _select(values, 0, n, mid);
        if (n % 2 == 1) return values[mid];
        // values[0 .. mid) are the mid smallest: their maximum is s[mid - 1]
        int256 low = values[0];
        for (uint256 i = 1; i < mid; ++i) {
            if (values[i] > low) low = values[i];
        }
        return roundHalfEvenDiv(low + values[mid], 2);
    }

    /// @notice round_half_even((s[trim] + ... + s[n - trim - 1]) / (n - 2 * trim)), unweighted (s sorted, 0-based).
    /// @param values the coordinate's n values, one per update (permuted in place)
    /// @param trim how many values to drop at each end; 2 * trim < n
    function trimmedMean(int256[] memory values, uint256 trim) internal pure returns (int256) {
        uint256 n = _checkValues(values);
        if (trim > (n - 1) / 2) revert CoordinateRulesTrimTooLarge(n, trim);
        uint256 last = n - trim - 1;
        if (trim > 0) {
            _select(values, 0, n, trim); // values[0 .. trim) are the trim smallest
            _select(values, trim, n, last); // values(last .. n) are the trim largest
        }
        int256 total = 0;
        for (uint256 i = trim; i <= last; ++i) {
            unchecked {
                total += values[i]; // |total| < 2**143 (gas savings)
            }
        }
        return roundHalfEvenDiv(total, int256(n - 2 * trim));
    }

    /// @notice Sorts values[lo .. hi) ascending in place (heapsort; the selection's fallback).
    function heapSort(int256[] memory values, uint256 lo, uint256 hi) internal pure {
        uint256 n = hi - lo;
        if (n < 2) return;
        for (uint256 start = n / 2; start > 0; ) {
            --start;
            _siftDown(values, lo, start, n);
        }
        for (uint256 end = n - 1; end > 0; --end) {
            (values[lo], values[lo + end]) = (values[lo + end], values[lo]);
            _siftDown(values, lo, 0, end);
        }
    }

    function _checkCount(uint256 n) private pure returns (uint256) {
        if (n == 0) revert CoordinateRulesNoValues();
        if (n > MAX_VALUES) revert CoordinateRulesTooManyValues(n);
        return n;
    }

    function _checkValues(int256[] memory values) private pure returns (uint256 n) {
        n = _checkCount(values.length);
        for (uint256 i; i < n; ++i) {
            int256 v = values[i];
            if (v <= -VALUE_BOUND || v >= VALUE_BOUND) revert CoordinateRulesValueOutOfRange(i, v);
        }
    }

    /// @dev Puts the k-th smallest of values[lo .. hi) at position k (lo <= k < hi), the ones before it <= it and
    /// the ones after it >= it.
    function _select(int256[] memory a, uint256 lo, uint256 hi, uint256 k) private pure {
        uint256 rounds = 0;
        for (uint256 m = hi - lo; m > 1; m >>= 1) rounds += 2;
        while (hi - lo > 1) {
            if (rounds == 0) {
                heapSort(a, lo, hi);
                return;
            }
            --rounds;
            int256 pivot = _medianOfThree(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
            // three-way partition: [lo, lt) < pivot, [lt, gt) == pivot (never empty), [gt, hi) > pivot
            uint256 lt = lo;
            uint256 i = lo;
            uint256 gt = hi;
            while (i < gt) {
                int256 x = a[i];
                if (x < pivot) {
                    a[i] = a[lt];
                    a[lt] = x;
                    ++lt;
                    ++i;
                } else if (x > pivot) {
                    --gt;
                    a[i] = a[gt];
                    a[gt] = x;
                } else {
                    ++i;
                }
            }
            if (k < lt) hi = lt;
            else if (k >= gt) lo = gt;
            else return;
        }
    }

    function _medianOfThree(int256 x, int256 y, int256 z) private pure returns (int256) {
        if (x > y) (x, y) = (y, x);
        if (y > z) y = z;
        return x > y ? x : y;
    }

    function _siftDown(int256[] memory a, uint256 lo, uint256 root, uint256 n) private pure {
        int256 x = a[lo + root];
        while (true) {
            uint256 child = 2 * root + 1;
            if (child >= n) break;
            if (child + 1 < n && a[lo + child + 1] > a[lo + child]) ++child;
            int256 c = a[lo + child];
            if (c <= x) break;
            a[lo + root] = c;
            root = child;
        }
        a[lo + root] = x;
    }
}
