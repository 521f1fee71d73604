"""The carrier limit tables, at their boundaries."""

from __future__ import annotations

import pytest

from registry.limits import derive


def test_acceptance_figures():
    lim = derive(80, "ACCOUNT_NOTIFICATION", "PRIVATE_PROFIT")
    assert (lim.att_per_minute, lim.tmobile_per_day, lim.verizon_per_minute) == (4500, 200_000, 6000)


@pytest.mark.parametrize("score, att, tmo", [(100, 4500, 200_000), (76, 4500, 200_000), (75, 4500, 40_000),
                                             (74, 2400, 40_000), (51, 2400, 40_000), (50, 2400, 10_000),
                                             (49, 240, 10_000), (1, 240, 10_000), (0, 240, 2000)])
def test_standard_boundaries(score, att, tmo):
    lim = derive(score, "2FA", "PRIVATE_PROFIT")
    assert (lim.att_per_minute, lim.tmobile_per_day) == (att, tmo)


@pytest.mark.parametrize("score, tmo", [(86, 200_000), (85, 40_000), (66, 40_000), (65, 10_000), (26, 10_000),
                                        (25, 2000), (0, 2000)])
def test_mixed_marketing_tiers(score, tmo):
    assert derive(score, "MARKETING", "PRIVATE_PROFIT").tmobile_per_day == tmo


def test_low_volume_is_class_t_and_sole_proprietors():
    lim = derive(95, "LOW_VOLUME", "PRIVATE_PROFIT")
    assert (lim.att_class, lim.att_per_minute) == ("T", 75)
    sp = derive(80, "2FA", "SOLE_PROPRIETOR")
    assert (sp.brand_per_second, sp.brand_per_day) == (1, 1000)



def test_blocked_carriers_follow_the_reviews():
    from registry.limits import blocked_carriers

    assert blocked_carriers("review", {"ATT": "REVIEW"}) == (("*", "the campaign is review"),)
    assert blocked_carriers("active", {"ATT": "APPROVED", "TMOBILE": "SUSPENDED", "VERIZON": "REVIEW",
                                       "USCELLULAR": "REJECTED"}) == (
        ("tmobile", "TMOBILE SUSPENDED"), ("uscellular", "USCELLULAR REJECTED"), ("verizon", "VERIZON REVIEW"))
