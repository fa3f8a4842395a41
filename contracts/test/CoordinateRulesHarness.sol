// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoordinateRules} from "../libraries/CoordinateRules.sol";

/// @title CoordinateRulesHarness (tests only)
/// @notice Exposes CoordinateRules: one coordinate per call, many coordinates per call (the differential test
/// batches its cases into eth_calls), and the check a fraud proof would make (recompute, compare with a claim).
contract CoordinateRulesHarness {
    function roundHalfEvenDiv(int256 a, int256 b) external pure returns (int256) {
        return CoordinateRules.roundHalfEvenDiv(a, b);
    }

    function weightedMean(int256[] memory values, uint256[] memory weights) external pure returns (int256) {
        return CoordinateRules.weightedMean(values, weights);
    }

    function median(int256[] memory values) external pure returns (int256) {
        return CoordinateRules.median(values);
    }

    function trimmedMean(int256[] memory values, uint256 trim) external pure returns (int256) {
        return CoordinateRules.trimmedMean(values, trim);
    }

    function heapSort(int256[] memory values) external pure returns (int256[] memory) {
        CoordinateRules.heapSort(values, 0, values.length);
        return values;
    }

    /// @notice The median of n values that repeat pattern, built in memory: reaches counts whose calldata a
    /// node's RPC would refuse (2**16 values are 4 MiB of hex).
    function medianOfRepeats(int256[] memory pattern, uint256 n) external pure returns (int256) {
        int256[] memory values = new int256[](n);
        for (uint256 i; i < n; ++i) {
            values[i] = pattern[i % pattern.length];
        }
        return CoordinateRules.median(values);
    }

    function weightedMeans(int256[][] memory values, uint256[][] memory weights)
        external
        pure
        returns (int256[] memory results)
    {
        results = new int256[](values.length);
        for (uint256 i; i < values.length; ++i) {
            results[i] = CoordinateRules.weightedMean(values[i], weights[i]);
        }
    }

    function medians(int256[][] memory values) external pure returns (int256[] memory results) {
        results = new int256[](values.length);
        for (uint256 i; i < values.length; ++i) {
            results[i] = CoordinateRules.median(values[i]);
        }
    }

    function trimmedMeans(int256[][] memory values, uint256[] memory trims)
        external
        pure
        returns (int256[] memory results)
    {
        results = new int256[](values.length);
        for (uint256 i; i < values.length; ++i) {
            results[i] = CoordinateRules.trimmedMean(values[i], trims[i]);
        }
    }

    /// @notice Whether claimed is the weighted mean of values: the shape of a one-coordinate fraud proof.
    function checkWeightedMean(int256[] memory values, uint256[] memory weights, int256 claimed)
        external
        pure
        returns (bool)
    {
        return CoordinateRules.weightedMean(values, weights) == claimed;
    }

    function checkMedian(int256[] memory values, int256 claimed) external pure returns (bool) {
        return CoordinateRules.median(values) == claimed;
    }

    function checkTrimmedMean(int256[] memory values, uint256 trim, int256 claimed) external pure returns (bool) {
        return CoordinateRules.trimmedMean(values, trim) == claimed;
    }
}
