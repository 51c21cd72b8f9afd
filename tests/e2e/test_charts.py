"""The Grapher draws what institutions return: balances per institution, spending per month."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

from examples.grapher import charts
from examples.grapher.banks import InstitutionData
from examples.grapher.finances import format_money, last_months, summarize

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2026, 3, 15)


def account(name: str, value: int, kind: str = "cash:current", currency: str = "GBP") -> dict:
    return {"id": f"acc_{name}", "type": kind, "accountName": name, "currency": currency,
            "balance": {"amount": {"value": value, "currency": currency}, "date": TODAY.isoformat()}}


def payment(day: str, value: int, category: str = "groceries") -> dict:
    return {"id": f"txn_{day}_{value}", "accountId": "acc", "date": day,
            "amount": {"value": value, "currency": "GBP"}, "category": category, "status": "posted"}


def astoria() -> InstitutionData:
    return InstitutionData(
        "Bank of Astoria", "ok",
        accounts=[account("Everyday Current Account", 250_000), account("Easy Access Saver", 1_000_000),
                  account("Astoria Credit Card", -50_000, "card")],
        transactions=[
            payment("2026-03-02", -4_500), payment("2026-03-01", -120_000, "housing"),
            payment("2026-02-26", -20_000, "transfer"),  # to savings: not spending
            payment("2026-02-28", -30_000, "card_payment"),  # paying the card: not spending again
            payment("2026-02-25", 300_000, "income"),
            payment("2026-02-10", -2_000), payment("2025-02-10", -9_999),  # 13 months ago: not charted
        ],
    )


def monami() -> InstitutionData:
    return InstitutionData(
        "Monami Card", "ok", accounts=[account("Monami Rewards Card", -80_000, "card")],
        transactions=[payment("2026-03-05", -3_000, "eating_out"), payment("2026-01-20", -7_500, "shopping")],
    )


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter() if node.tag in (f"{SVG}text", f"{SVG}title")]


def test_balances_are_summed_per_institution_with_cards_as_debt():
    finances = summarize([astoria(), monami()], TODAY)
    assert [(b.name, b.value, b.accounts) for b in finances.balances] == [
        ("Bank of Astoria", 1_200_000, 3), ("Monami Card", -80_000, 1)]
    assert finances.currency == "GBP"


def test_spending_counts_payments_out_but_not_moves_between_own_accounts():
    finances = summarize([astoria(), monami()], TODAY)
    spending = finances.spending
    assert spending.months == last_months(TODAY, 12)
    assert spending.months[0] == date(2025, 4, 1) and spending.months[-1] == date(2026, 3, 1)
    assert spending.series["Bank of Astoria"][-1] == 124_500  # rent + groceries in March
    assert spending.series["Bank of Astoria"][-2] == 2_000  # February: no transfer, no card payment
    assert sum(spending.series["Bank of Astoria"]) == 126_500  # a year ago and more is left out
    assert spending.series["Monami Card"][-1] == 3_000 and spending.series["Monami Card"][-3] == 7_500


def test_an_institution_without_data_is_listed_but_not_charted():
    waiting = InstitutionData("Norma Securities", "reauth_required", "Sign in at Norma again.")
    finances = summarize([astoria(), waiting], TODAY)
    assert finances.charted == ["Bank of Astoria"]
    assert [b.name for b in finances.balances] == ["Bank of Astoria"]
    assert waiting.needs_person and not waiting.ok


def test_balance_chart_names_each_institution_and_its_amount():
    finances = summarize([astoria(), monami()], TODAY)
    palette = charts.colors(finances.charted)
    root = parse(charts.balance_chart(finances.balances, finances.currency, palette))
    assert root.get("role") == "img"
    bars = root.findall(f"{SVG}g[@class='bar']")
    assert [bar.get("data-institution") for bar in bars] == ["Bank of Astoria", "Monami Card"]
    assert "Monami Card: -£800.00" in texts(root)
    assert {bar.find(f"{SVG}rect").get("fill") for bar in bars} == set(palette.values())
    zero = float(root.find(f"{SVG}line").get("x1"))
    card = bars[1].find(f"{SVG}rect")
    assert float(card.get("x")) < zero, "debt is drawn left of the zero line"


def test_spending_chart_stacks_institutions_with_a_legend():
    finances = summarize([astoria(), monami()], TODAY)
    palette = charts.colors(finances.charted)
    root = parse(charts.spending_chart(finances.spending, finances.currency, palette))
    legend = [item.get("data-institution") for item in root.iter(f"{SVG}g")
              if item.get("class") == "legend-item"]
    assert legend == ["Bank of Astoria", "Monami Card"]
    march = [r for r in root.iter(f"{SVG}rect") if r.get("data-month") == "2026-03"]
    assert [r.get("data-institution") for r in march] == ["Bank of Astoria", "Monami Card"]
    assert "Monami Card, March 2026: £30.00" in texts(root)
    heights = {r.get("data-institution"): float(r.get("height")) for r in march}
    assert heights["Bank of Astoria"] > heights["Monami Card"] > 0


def test_names_from_an_institution_are_escaped():
    hostile = InstitutionData('<script>alert("x")</script> & Co', "ok",
                              accounts=[account("A", 100)], transactions=[payment("2026-03-01", -100)])
    finances = summarize([hostile], TODAY)
    palette = charts.colors(finances.charted)
    for svg in (charts.balance_chart(finances.balances, "GBP", palette),
                charts.spending_chart(finances.spending, "GBP", palette)):
        assert "<script>" not in svg
        assert any("<script>" in text for text in texts(parse(svg)))


def test_empty_data_still_draws_valid_charts():
    finances = summarize([], TODAY)
    parse(charts.balance_chart(finances.balances, "GBP", {}))
    parse(charts.spending_chart(finances.spending, "GBP", {}))
    assert finances.spending.empty


def test_other_currencies_are_not_mixed_into_the_chart():
    euro = InstitutionData("Euro Bank", "ok", accounts=[account("Konto", 5_000, currency="EUR")])
    finances = summarize([astoria(), euro], TODAY)
    assert finances.currency == "GBP"
    assert finances.other_currency == 1
    assert [b.value for b in finances.balances if b.name == "Euro Bank"] == [0]


def test_money_and_axis_steps_read_well():
    assert format_money(123_456, "GBP") == "£1,234.56"
    assert format_money(-5, "GBP") == "-£0.05"
    assert format_money(250_000, "GBP", whole=True) == "£2,500"
    assert format_money(1200, "JPY") == "¥1,200"
    assert format_money(100, "CHF") == "1.00 CHF"
    assert [charts.nice_step(x) for x in (0, 3, 7, 12, 240, 2600)] == [1, 5, 10, 20, 250, 5000]
