"""The guards' packaged data: classifier weights, and digests of the texts each learnt from."""
