import charter


def test_all_exports_exist_and_are_sorted() -> None:
    for name in charter.__all__:
        assert hasattr(charter, name), name
    assert charter.__all__ == sorted(charter.__all__)


def test_no_public_name_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(charter).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("charter")
    }
    assert public <= set(charter.__all__)
