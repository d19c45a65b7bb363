"""The ATC coverage rule every check shares."""

from interactions import atc


def test_group_codes_cover_every_code_below_them() -> None:
    for group in ("N", "N06", "N06A", "N06AA"):
        assert atc.covers(group, "N06AA09")


def test_level5_code_covers_only_itself() -> None:
    assert atc.covers("N06AA09", "N06AA09")
    assert not atc.covers("N06AA09", "N06AA10")
    assert not atc.covers("N06AA0", "N06AA09")


def test_six_level_fictional_codes_are_ordinary_codes() -> None:
    assert atc.covers("ZV80AA01", "ZV80AA01")
    assert atc.covers("ZV80AA", "ZV80AA01")
    assert not atc.covers("ZV80AA0", "ZV80AA01")
    assert not atc.covers("ZV80AA01", "ZV80AA02")


def test_pseudo_code_without_is_no_code() -> None:
    assert atc.normalise("WITHOUT") is None
    assert atc.normalise(" without ") is None
    assert atc.normalise(" n02be01 ") == "N02BE01"


def test_level4_of_a_level5_code() -> None:
    assert atc.level4("M01AE01") == "M01AE"
    assert atc.level4("M01AE") is None
    assert atc.level4("ZV80AA01") is None


def test_tree_links_each_code_to_its_group_codes() -> None:
    tree = atc.build_tree(["N02BE01", "N02AJ06", "WITHOUT", None])
    assert set(tree.successors("N02")) == {"N02B", "N02A"}
    assert list(tree.predecessors("N02BE01")) == ["N02BE"]
    assert "WITHOUT" not in tree
