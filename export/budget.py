"""The mobile budget: a network over `--max_madds` multiply-adds is refused before anything is written."""

MOBILE_MADDS = 600_000_000  # the mobile setting's limit (DARTS, ProxylessNAS, SPOS)


class BudgetError(ValueError):
    """A network over the MAdds budget."""


def check_budget(cost, max_madds=MOBILE_MADDS, allow_over_budget=False):
    """Raises `BudgetError` when `cost["madds"]` exceeds `max_madds`, unless `allow_over_budget`."""
    if cost["madds"] > max_madds and not allow_over_budget:
        raise BudgetError(
            f"The network has {cost['params']:,} params and needs {cost['madds'] / 1e6:.2f}M MAdds, over the budget of {max_madds / 1e6:.2f}M "
            "(--max_madds). Pick a smaller genotype or width, raise --max_madds, or pass "
            "--allow_over_budget to export it anyway."
        )
