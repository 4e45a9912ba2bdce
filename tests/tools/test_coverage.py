"""The request's values that no call used (`charter.tools.coverage`)."""

from __future__ import annotations

from charter.tools.coverage import request_values, unused


def bmi(weight: float, height: float) -> dict[str, object]:
    return {"tool": "bmi", "arguments": {"weight_kg": weight, "height_m": height}}


def test_numbers_left_out_are_found_when_a_call_used_the_requests_numbers() -> None:
    request = "John weighs 85 kg and is 1.8 m tall, Sarah 60 kg and 1.65 m, Mike 75 kg, 1.7 m."
    assert unused(request, [bmi(85, 1.8), bmi(60, 1.65)]) == ["75", "1.7"]
    assert unused(request, [bmi(85, 1.8), bmi(60, 1.65), bmi(75, 1.7)]) == []
    # percentages either way, amounts with separators, numbers inside text values
    rate = "Invest $5,000 at 5% for 10 years."
    call = {"tool": "fv", "arguments": {"pv": 5000, "rate": 0.05, "years": 10}}
    assert unused(rate, [call]) == []
    assert unused("Flight AB123 on the 12th at 1500", [{"arguments": {"at": "1500"}}]) == []


def test_a_kind_the_calls_did_not_use_is_not_reported() -> None:
    # the call took a name, not a number: the request's numbers are not the call's business
    request = "I'm 35 and live in Paris. What's the weather there?"
    assert unused(request, [{"tool": "weather", "arguments": {"city": "Paris"}}]) == []
    assert unused(request, []) == []


def test_names_count_only_in_a_list_with_one_that_was_used() -> None:
    call = {"tool": "price", "arguments": {"company": "Microsoft", "days": 30}}
    assert unused("Prices of Microsoft and Apple over 30 days?", [call]) == ["Apple"]
    assert unused("Weather in Paris, Rome or Oslo?", [{"arguments": {"c": "Paris"}}]) == [
        "Rome",
        "Oslo",
    ]
    # "Paris, France" is a place and its country, not a list; a month is part of a date
    book = {"arguments": {"city": "Paris", "from": "2022-07-10"}}
    assert unused("Book a room in Paris, France from July 10, 2022.", [book]) == []


def test_quoted_text_and_what_is_not_a_value() -> None:
    call = {"arguments": {"snp_id": "rs123456", "species": "Homo sapiens"}}
    request = "The type of SNP 'rs123456' in 'Homo sapiens' and 'rs7891011' in 'Canis lupus'?"
    assert unused(request, [call]) == ["rs7891011", "Canis lupus"]
    # a tool's own name is not a value; apostrophes in words do not quote
    use = "Use the 'update_user' function: set 'name' to 'Ann'. What's the user's id?"
    assert unused(use, [{"arguments": {"name": "Ann"}}], tools={"update_user"}) == ["name"]
    values = request_values("What's the 3x^2 term in 'f' (v2)? Calculate 7 items.")
    assert [(v.kind, v.text) for v in values] == [("number", "7")]


def test_a_list_written_without_spaces_is_several_numbers() -> None:
    call = {"arguments": {"pv": 1000, "rate": 0.05, "years": 15}}
    request = "Future value of $1,000 at 5% for 1,5 and 10 years."
    assert unused(request, [call]) == ["1", "5", "10"]
    years = [{"arguments": {"pv": 1000, "rate": 0.05, "years": n}} for n in (1, 5, 10)]
    assert unused(request, years) == []
