"""Lifeboat's tests: tests/<stage>/ mirrors the package of that name, tests/system/ runs whole
processes end to end, tests/support/ holds the helpers they import. A package, so that two
stages may hold files of one name and helpers import as `tests.support.<module>`."""
