"""Intrinsic dimension of point clouds: PH dimension and TwoNN."""
