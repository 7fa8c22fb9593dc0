# ruff: noqa: E501 (the table of ties below reads best one tie to a line)
"""The tables of docs/reliability.md, made from the test corpus and fault plans themselves.

`python -m tests.reliability_doc` rewrites the blocks between the `<!-- name:start -->` and
`<!-- name:end -->` markers; `tests/reliability/test_reliability_doc.py` fails when the document is stale.
"""

from __future__ import annotations

import re
from asyncio.selector_events import _SelectorSocketTransport
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

from boothgate.booth.strangers import UNPROVEN_MEMORY_BYTES
from boothgate.operator.credentials import HASH_WAITING
from boothgate.records import tallies
from tests.bad_inputs import CORPUS, CORPUS_SETTINGS
from tests.booth import test_admission_properties as properties
from tests.booth import test_stranger_fields as stranger_fields
from tests.providers import test_hostile_answers as hostile_answers
from tests.reliability import test_graceful_stop as graceful_stop
from tests.reliability import test_postgres_stopped as pg
from tests.reliability.test_faults import BOOTHS, FAULT_PLAN
from tests.reliability.test_faults import DEADLINE as BURST_DEADLINE
from tests.reliability.test_provider_faults import DEADLINE, EXPECTED, FAULT_WORDS

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def summary_table() -> str:
    """The summary's figures from the tests' own plans: how many inputs, properties, faults and booths."""
    tests = [f for n, f in vars(properties).items() if n.startswith("test_") and getattr(f, "is_hypothesis_test", 0)]
    examples = properties.FAST.max_examples
    inputs = f"{len(tests) * examples:,}".replace(",", " ")  # 1 200, as the page writes thousands
    rows = [
        "| area | tried | test | every booth answered in time | photos lost |",
        "|---|---|---|---|---|",
        f"| bad input, hand-made | {len(CORPUS)} raw HTTP requests (table below) on one server, plus the `../` + NUL "
        "file name again | `test_bad_input.py::test_corpus` | yes, each with its status from `design.md`; nothing "
        "written outside the data dir; server still serving after each | 0 |",
        f"| bad input, generated | {len(tests)} Hypothesis properties × {examples} examples = "
        f"{inputs} inputs per run: random forms in random chunkings, arbitrary bytes, mangled forms, "
        "limit shapes, arbitrary image bytes, damaged JPEG/PNG/WEBP, declared dimensions up to 2³¹−1, arbitrary "
        "EXIF blocks | `test_admission_properties.py` | never an exception other than a booth error; never more "
        "than the cap on disk; never a pixel decoded during admission | 0 |",
        *SUMMARY_DESCRIBED[:2],
        f"| provider faults | {len(FAULT_PLAN)} kinds (table below), one request each, then {BOOTHS} booths at once "
        f"spread over all of them, {BURST_DEADLINE:g} s deadline | `test_faults.py` | yes: all {BOOTHS} within "
        "deadline + 1 s; statistics equal the answers; every failed original byte-identical in trash with its "
        "sidecar | 0 |",
        *SUMMARY_DESCRIBED[2:],
    ]
    return "\n".join(rows)


# Rows whose figures are what their tests do, in words (no count to take from a plan).
SUMMARY_DESCRIBED = [
    "| slow and vanishing clients | body at 1 byte/s; body that stops half-way; request head a byte every 0.2 s; a "
    "silent connection; a booth hanging up mid-upload | `test_bad_input.py` | 400 `upload_too_slow` by the deadline, "
    "400 `upload_stalled` after the idle timeout, connection closed after the head timeout, 400 `client_disconnected`; "
    "another booth served meanwhile in each case | 0 (the part that arrived is kept in trash) |",
    "| wrong passwords | repeated booth and admin guesses | `test_bad_input.py`, `test_security.py` | 401 with growing "
    "delays, then 429 even for the right password | — |",
    "| crashes | SIGKILL of a real server process with 3 jobs at the provider, one more upload half received, plus a photo "
    "whose job row was never written | `test_crash.py` | (killed process) on restart: 3 jobs `failed`/`interrupted`, "
    "all 3 originals byte-identical in trash with sidecars, the half upload and the unrecorded photo in trash, "
    "`PRAGMA integrity_check` ok, no job left running, every stored path exists, statistics add up, the next photo "
    "processed | 0 |",
    "| full disk | no space for the result; no space for the result nor the sidecar; no space for the incoming upload "
    "| `test_disk_full.py` | 507 `storage_failed` (or the guest's own photo with `on_failure = original`); served "
    "again once space is back | 0 |",
]


def corpus_table() -> str:
    rows = ["| bad input | status | answer |", "|---|---|---|"]
    for case in CORPUS:
        answer = case.code or ("the processed image" if case.status == 200 else "no route (framework 404)")
        rows.append(f"| {case.name} | {case.status} | {answer} |")
    return "\n".join(rows)


def faults_table() -> str:
    """The plan `tests/reliability/test_faults.py` asserts: the real Gemini module against its wire fake."""
    rows = ["| provider fault | how it is injected | status | answer |", "|---|---|---|---|"]
    for name, (_, how, status, code) in FAULT_PLAN.items():
        rows.append(f"| {name} | {how} | {status} | {code or 'the processed image'} |")
    rows.append("")
    rows.append(
        f"Each alone, then {BOOTHS} booths at once over all of them ({BURST_DEADLINE:g} s deadline): every job's recorded "
        "time inside the deadline, the statistics equal to the answers, every failed original byte-identical in trash."
    )
    return "\n".join(rows)


def provider_faults_table() -> str:
    """The plan `tests/reliability/test_provider_faults.py` asserts, one column per real provider tab."""
    tabs = [tab for tab in EXPECTED if len(EXPECTED[tab]) > 1]
    rows = ["| fault on the wire | " + " | ".join(tabs) + " |", "|---|" + "---|" * len(tabs)]
    for fault, words in FAULT_WORDS.items():
        cells = []
        for tab in tabs:
            status, code = EXPECTED[tab][fault]
            cells.append(f"{status} `{code}`" if code else f"{status}")
        rows.append(f"| {fault}: {words} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(
        f"All at once per tab, {DEADLINE:g} s deadline: every job's recorded time inside the deadline, the statistics "
        "equal to the answers, every failed original byte-identical in trash. The offline tab (no wire) serves its "
        "clean photo in the same run."
    )
    return "\n".join(rows)


BLOCKS = {
    "summary": summary_table,
    "corpus": corpus_table,
    "faults": faults_table,
    "provider_faults": provider_faults_table,
}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)  # type: ignore[misc]
    return text


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))


# ---------------------------------------------------------------- figures in the prose, each tied to a test
# Every number in the page outside the generated blocks is a figure some test uses. A `Tie` names the words
# that carry it (`phrase`, exactly as the page has them), the test (`tests/<file>::<function>`, or a file for
# its module-level constants), and the expressions in that test that hold the figure, as written there
# (compared by syntax tree). `tests/reliability/test_reliability_doc.py` checks that the phrase is in the
# page, that each expression is in the test, and that every number in the phrase is a number literal of
# those expressions (`scale` converts a unit: "2 MB" against 2_000_000 bytes); a number left in the page
# that no phrase covers fails the check. Spelled numbers ("three booths") count as numbers.
NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "twenty": 20, "fifty": 50,
    "fourth": 4,
}  # fmt: skip
NUMBER = re.compile(r"(?<![\w.])\d+(?:[  ]\d{3})*(?:\.\d+)?|\b(?:" + "|".join(NUMBER_WORDS) + r")\b", re.I)


def settings_changes() -> list[object]:
    """The settings `test_settings_during_jobs.py` saves during a job: its test's parameters."""
    from tests.reliability import test_settings_during_jobs as module

    test = module.test_a_settings_save_during_a_slow_openai_job_leaves_it_to_succeed
    [mark] = [m for m in test.pytestmark if m.name == "parametrize"]
    return list(mark.args[1])


def after_check_sizes() -> list[tuple[int, int]]:
    from tests.run import test_after_check_memory as module

    test = module.test_the_after_check_never_decodes_a_large_result_in_the_server
    [mark] = [m for m in test.pytestmark if m.name == "parametrize"]
    return list(mark.args[1])


def field_default(name: str) -> Any:
    from boothgate.settings import Settings

    return Settings.model_fields[name].default


def spelled(number: int) -> str:
    """A count as the page writes it in words."""
    return {value: word for word, value in NUMBER_WORDS.items() if word != "fourth"}[number]


class Tie:
    """`made`, when given, says why the phrase's numbers need no literal in the test: the phrase is built here
    from the test's own constants, or the test reads the figure from this page."""

    def __init__(
        self, phrase: str, test: str, *code: str, scale: dict[str, float] | None = None, made: str = ""
    ) -> None:
        self.phrase, self.test, self.code, self.scale, self.made = phrase, test, code, scale or {}, made


def numbers_in(phrase: str) -> list[float]:
    found = []
    for token in NUMBER.findall(phrase):
        word = token.lower()
        found.append(float(NUMBER_WORDS[word]) if word in NUMBER_WORDS else float(re.sub(r"[  ]", "", token)))
    return found


def generated_blocks_removed(text: str) -> str:
    return re.sub(r"<!-- (\w+):start -->.*?<!-- \1:end -->", "", text, flags=re.S)


def untied_numbers(text: str, ties: list[Tie], not_figures: list[str]) -> list[str]:
    """The numbers left in the page's prose once the generated blocks, code spans, tied phrases and the
    words that are no figure (an address, an issue's number, a section's) are taken out; each with its line."""
    rest = re.sub(r"(?m)^(#+ )\d+\. ", r"\1", generated_blocks_removed(text))  # a section's number
    for phrase in [t.phrase for t in ties] + not_figures:
        rest = rest.replace(phrase, " ")
    rest = re.sub(r"`[^`\n]*`", " ", rest)
    left = []
    for line in rest.splitlines():
        left += [f"{token!r} in: {line.strip()[:100]}" for token in NUMBER.findall(line)]
    return left


BAD = "booth/test_bad_input.py"
FAULTS = "reliability/test_faults.py::test_fifty_booths_against_every_fault"
CRASH = "reliability/test_crash.py::test_sigkill_in_the_middle_of_jobs_loses_no_photo"
STRANGERS = "reliability/test_strangers.py::test_hostile_uploads_leave_no_body_and_booths_keep_getting_200"
LOCKED = "reliability/test_database_faults.py::test_a_locked_database_delays_no_answer_and_the_jobs_are_counted_once_it_is_free"
DISK = "reliability/test_disk_full.py"
POSTGRES = "reliability/test_postgres_stopped.py"
LIMITS = "imaging/test_image_limits.py"
TRASH = "reliability/test_strangers.py::test_trash_has_a_size_budget_oldest_removed_first"
DISK_JOURNAL = "test_a_disk_full_for_the_database_and_the_journal_gives_up_the_reserve_and_loses_no_row"
DELETED = "reliability/test_database_faults.py::test_health_reports_a_deleted_database_file_and_booths_get_no_500"
MALFORMED_TEST = "test_a_malformed_answer_is_the_providers_failure_and_the_fallback_serves"
REDIRECT_TEST = "test_a_redirect_to_another_origin_is_refused_and_carries_nothing"
STOP_TEST = "test_a_signal_to_the_whole_group_lets_every_booth_in_flight_finish"
SETTINGS_TEST = "test_a_settings_save_during_a_slow_openai_job_leaves_it_to_succeed"
CLOCK_BEHIND = "test_photos_written_with_the_clock_behind_survive_a_start_with_the_right_time"
CLOCK_KEPT = "test_a_folder_goes_once_it_has_been_kept_for_its_retention"
CLOCK_JUMP = "test_a_clock_jump_is_logged_and_shown"
BOMB_TEST = "test_a_gzip_bomb_is_refused_by_its_inflated_size_without_holding_it"
SDK_REDIRECT_TEST = "test_a_redirect_elsewhere_or_a_corrupt_answer_through_the_sdk_is_refused"
FIELDS_TEST = "test_forty_passwordless_requests_with_large_fields_stay_inside_the_budget"
ADMIT_TEST = "test_a_result_declaring_200_megapixels_on_the_default_shape_is_refused_and_the_fallback_serves"
CEILING_TEST = "test_work_over_the_ceiling_fails_at_once_and_its_worker_is_replaced"
OWN_TEST = "test_a_providers_own_work_over_the_ceiling_is_its_failure_and_the_fallback_serves"
BIG_TEST = "test_a_result_too_big_for_a_workers_memory_is_answered_in_time_and_other_booths_are_served"
AFTER_TEST = "test_the_after_check_never_decodes_a_large_result_in_the_server"
IPV6_TEST = "test_one_rotating_ipv6_client_is_throttled_by_its_prefix"
GLOBAL_TEST = "test_records_of_all_strangers_together_stay_within_the_global_budget"
GUESS_TEST = "test_wrong_admin_passwords_from_many_addresses_leave_booths_at_their_pace"
IDLE = "test_a_client_that_stops_sending_is_cut_off_by_the_idle_timeout"
HOSTILE = "test_hostile_photos_are_refused_while_ordinary_booths_get_their_results"
STUCK = "test_a_worker_past_its_deadline_makes_health_degraded_until_it_is_stopped"
PG_TEST = "test_postgres_stopped_mid_burst_every_booth_answered_and_the_node_recovers_by_itself"

# Words that carry no figure: an address, an issue's or a section's number.
NOT_FIGURES = ["127.0.0.1", "(issue 14, parts 2–4)", "(issue 31)", "class 13 below", "as class 1 for"]

TIES: list[Tie] = [
    # the summary's generated rows: the one figure of their wording
    Tie("declared dimensions up to 2³¹−1", "booth/test_admission_properties.py::"
        "test_declared_dimensions_decide_admission_before_any_decoding", "st.integers(1, 2**31 - 1)"),
    # the summary's rows written in words (SUMMARY_DESCRIBED)
    Tie("body at 1 byte/s", f"{BAD}::test_one_byte_per_second_is_cut_off_and_other_booths_are_served",
        "_trickle(port, booth_form(make_jpeg(64, 48, seed=20)), asyncio.Event(), 1.0)"),
    Tie("request head a byte every 0.2 s", f"{BAD}::test_a_request_head_trickled_byte_by_byte_is_cut_off",
        "_closed_after(port, 0.2, head, opened[0])"),
    Tie("400 `upload_too_slow` by the deadline", f"{BAD}::test_one_byte_per_second_is_cut_off_and_other_booths_are_served",
        "status == 400 and json.loads(body)['error'] == 'upload_too_slow'"),
    Tie("400 `upload_stalled` after the idle timeout", f"{BAD}::{IDLE}",
        "b' 400 ' in line.split(b'\\r\\n')[0] and answer['error'] == 'upload_stalled'", made="the status line's b' 400 '"),
    Tie("400 `client_disconnected`", f"{BAD}::test_a_client_that_hangs_up_mid_upload_is_recorded_as_rejected",
        "(job['status'], job['error'], job['http_status']) == ('rejected', 'client_disconnected', 400)"),
    Tie("| 0 (the part that arrived is kept in trash) |", f"{BAD}::test_a_client_that_hangs_up_mid_upload_is_recorded_as_rejected",
        "_assert_trashed_with_sidecar(booth, job['id'], 'client_disconnected', partial)",
        made="none lost: the test fails unless what arrived is in trash, byte for byte"),
    Tie("| 401 with growing delays, then 429 even for the right password |",
        f"{BAD}::test_repeated_wrong_passwords_slow_down_then_lock_out", "answer.status == 401",
        "locked.status == 429 and locked.json()['error'] == 'rate_limited'"),
    Tie("processed | 0 |", CRASH, "[p.read_bytes() for p in partials] == [partial]",
        made="none lost: the test fails unless every original and the half upload are in trash"),
    Tie("| 507 `storage_failed` (or the guest's own photo", f"{DISK}::test_no_space_for_the_result_answers_507_and_keeps_the_original",
        "(507, 'storage_failed')"),
    Tie("served again once space is back | 0 |", f"{DISK}::test_no_space_for_the_result_answers_507_and_keeps_the_original",
        "(job['status'], job['error'], job['in_trash']) == ('failed', 'storage_failed', True)",
        made="none lost: the test fails unless the original is in trash"),
    Tie("SIGKILL of a real server process with 3 jobs at the provider", CRASH,
        "[make_jpeg(320, 240, seed=81 + i) for i in range(3)]"),
    Tie("on restart: 3 jobs `failed`/`interrupted`, all 3 originals", CRASH, "range(3)"),
    # Photos lost: the burst test reads the figure from this page and fails unless its count is that figure
    Tie("**Photos lost: 0.**", FAULTS, "len(lost) == documented_photos_lost()", made="the test reads it here"),
    Tie("the 50-booth run", "reliability/test_faults.py", "BOOTHS = 50"),
    # Bad input: the corpus server's settings
    Tie(f"a {CORPUS_SETTINGS['max_upload_bytes'] // 10**6} MB upload cap, a "
        f"{CORPUS_SETTINGS['max_image_pixels'] // 10**6}-megapixel image\ncap, a "
        f"{CORPUS_SETTINGS['deadline_seconds']:g} s deadline and a "
        f"{CORPUS_SETTINGS['upload_idle_timeout_seconds']:g} s idle timeout", "bad_inputs.py",
        made="built from CORPUS_SETTINGS"),
    # Provider faults: the planted bugs' rows of FAULT_PLAN
    Tie(f"still answers\n{FAULT_PLAN['unmapped'][2]}, not {FAULT_PLAN['crash'][2]}", "reliability/test_faults.py",
        made="built from FAULT_PLAN"),
    Tie(f"the one fault answered {FAULT_PLAN['crash'][2]} `{FAULT_PLAN['crash'][3]}`", "reliability/test_faults.py",
        made="built from FAULT_PLAN"),
    # Crashes
    Tie("three photos to a slot", CRASH, "range(3)"),
    Tie("the fake holds for 30 s", "reliability/test_crash.py::gemini", "fake.slow_seconds = 30"),
    # Full disk
    Tie("No space for the result answers 507", f"{DISK}::test_no_space_for_the_result_answers_507_and_keeps_the_original",
        "(507, 'storage_failed')"),
    Tie("*on failure → original*, 200 with the\nguest's own photo", f"{DISK}::test_no_space_with_on_failure_original_answers_the_guest_photo",
        "(200, data)"),
    Tie("No space for the incoming upload answers 507", f"{DISK}::test_no_space_while_receiving_answers_507",
        "(507, 'storage_failed')"),
    # Strangers, the database, admission
    Tie('(6 MB, no password) and 6 MB of "photo" before a wrong password', STRANGERS, "6 * MB"),
    Tie("while six ordinary booths post", STRANGERS, "range(6)"),
    Tie("ordinary booths: 200 each; hostile: 400 `upload_incomplete`, 401;", STRANGERS, "[200] * 6",
        "(status1, body1['error']) == (400, 'upload_incomplete')", "(status2, body2['error']) == (401, 'unauthorized')"),
    Tie("nothing over 1 MB ever in", STRANGERS, "max(seen) < MB", made="MB is the test's unit: max(seen) < MB"),
    Tie("the address gets 429", STRANGERS, "locked.status == 429"),
    Tie("ten failed jobs, their 700×500 photos over 2 MB in all", f"{TRASH}",
        "pytest.mark.parametrize('entries', [10])", "make_jpeg(700, 500, seed=300 + i, quality=97)",
        "sum(len(p) for p in photos) > 2 * MB"),
    Tie("against a 1 MB budget", TRASH, "trash_max_bytes=MB", made="MB is the test's unit: trash_max_bytes=MB"),
    Tie("while three booths post", LOCKED, "len(tab.fake.received) == 3"),
    Tie("(5 s deadline)", "reliability/test_database_faults.py", "DEADLINE = 5.0"),
    Tie("the write's budget, ≤ 1 s", "boothgate/booth/failwell.py", "DB_WRITE_SECONDS = 1.0"),
    Tie("all three answered before the deadline (200, 200, 502)", LOCKED, "[200, 200, 502]",
        "len(tab.fake.received) == 3"),
    Tie("exactly 3 received, 2 succeeded, 1 failed", LOCKED, "(3, 2, 1, 0)"),
    Tie("(a 48 MB tmpfs)", DISK, "SIZE_MB = 48"),
    Tie("the journal sets 4 MB aside", "boothgate/records/journal.py", "RESERVE_BYTES = 4 * 1024 * 1024"),
    Tie("| 507 `storage_failed`, the original in trash;", f"{DISK}::{DISK_JOURNAL}", "(507, 'storage_failed')"),
    Tie("`/health` 503 `database: false`", DELETED, "broken.status_code == 503"),
    Tie("booths answered 200 (never a 500)", DELETED, "answer.status == 200",
        made="the test's name: ..._booths_get_no_500, and its 200"),
    Tie(f"{pg.BURST // 2} booths at Gemini ({pg.PROVIDER_SECONDS:g} s each)", POSTGRES, made="from the test's constants"),
    Tie(f"{pg.BURST // 2} more arrive while it is down", POSTGRES, made="from the test's constants"),
    Tie("answers 503 `database_unavailable`", f"{POSTGRES}::{PG_TEST}", "answer.status == 503"),
    Tie(f"the {pg.BURST // 2} in flight: 200 with their image; the {pg.BURST // 2} after the stop: 503 "
        "`database_unavailable`", f"{POSTGRES}::{PG_TEST}", "i < BURST // 2", "answer.status == 503",
        "answer.status == 200 and answer.content_type == 'image/jpeg'", made="from the test's constants"),
    Tie("`/health` 503 `broken`", f"{POSTGRES}::{PG_TEST}", "down.status_code == 503"),
    Tie(f"a new booth 200, statistics exactly {pg.BURST + 1} received / {pg.BURST // 2 + 1} succeeded / "
        f"{pg.BURST // 2} failed", f"{POSTGRES}::{PG_TEST}", "later.status == 200",
        "(today['received'], today['succeeded'], today['failed']) == (BURST + 1, BURST // 2 + 1, BURST // 2)",
        made="from the test's constants"),
    Tie("| 200 with the admitted reference", "booth/test_admission_snapshot.py::"
        "test_replacing_the_reference_during_preparation_uses_the_admitted_one", "answer.status == 200"),
    Tie("422 each and nothing stored", "booth/test_inputs_cleaned.py::test_the_settings_page_answers_422_outside_each_range",
        "response.status_code == 422"),
    Tie("404 right after the answer", "booth/test_inputs_cleaned.py::"
        "test_media_links_are_revoked_the_moment_the_booth_is_answered", "statuses == [404, 404]"),
    Tie("(default 5 GB)", "boothgate/settings.py", "5 * 1024 * MB"),
    # Image work
    Tie("a 10000×10000 progressive JPEG", f"{LIMITS}::big_progressive_jpeg", "Image.new('L', (10000, 10000), 128)"),
    Tie("| 422 `image_too_complex` / 413 `image_too_large` before any decode, originals in trash; the ordinary booths "
        "get 200 |", f"{LIMITS}::{HOSTILE}", "(422, 'image_too_complex')", "(413, 'image_too_large')",
        "[200, 200, 200]"),
    Tie("a provider's 19000×19000 PNG", f"{LIMITS}::huge_png", "19000"),
    Tie("| 502 `provider_bad_response`, never decoded |", f"{LIMITS}::test_a_result_over_the_pixel_cap_is_refused_unread",
        "answer.status == 502 and answer.json()['error'] == 'provider_bad_response'"),
    Tie("| 503 `busy` with", "boothgate/booth/capacity.py", "status, code = 503, 'busy'"),
    Tie("stuck: work still running 2 s past its deadline", "boothgate/imaging/workers.py", "STUCK_GRACE_SECONDS = 2.0"),
    Tie("(a hung task 2 s past its deadline", "boothgate/imaging/workers.py",
        "STUCK_GRACE_SECONDS = 2.0"),
    Tie("`stuck` 1, then `ok`", f"reliability/test_stuck_worker.py::{STUCK}",
        "degraded['image_workers']['stuck'] == 1"),
    # Hardening, second round: 4. malformed answers
    Tie("502 `provider_bad_response`, logged with its", f"providers/test_hostile_answers.py::{MALFORMED_TEST}", "alone.status == 502"),
    Tie(f"Other exceptions stay bugs ({FAULT_PLAN['crash'][2]} `{FAULT_PLAN['crash'][3]}`)", "reliability/test_faults.py",
        made="built from FAULT_PLAN (the crash row)"),
    Tie(f"({spelled(len(hostile_answers.MALFORMED))} shapes through the real google-genai SDK", "providers/test_hostile_answers.py",
        made="the number of MALFORMED"),
    Tie("200 000 levels of nesting", "fakes/hostile.py::_handle", "'[' * 200_000 + ']' * 200_000"),
    # 5. redirects
    Tie("A 301/302/303/307/308 to another origin", "boothgate/providers/transport.py",
        "REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})"),
    Tie("is refused at the transport before the client can follow it: 502", f"providers/test_hostile_answers.py::{REDIRECT_TEST}",
        "answer.status == 502"),
    Tie("(302, 307, 308 from a fake Gemini", f"providers/test_hostile_answers.py::{REDIRECT_TEST}",
        "pytest.mark.parametrize('status', [302, 307, 308])"),
    # 6. a stop that loses booths
    Tie("(at most the deadline\n+ 5 s", "boothgate/web/server.py", "int(settings.deadline_seconds) + 5"),
    Tie("8 booths of", "reliability/test_graceful_stop.py", "BOOTHS = 8"),
    Tie("3000×2250", f"reliability/test_graceful_stop.py::{STOP_TEST}",
        "[make_jpeg(3000, 2250, seed=700 + i + signum * 10) for i in range(BOOTHS)]"),
    Tie(f"prepared: {graceful_stop.BOOTHS} × 200,", f"reliability/test_graceful_stop.py::{STOP_TEST}",
        "statuses == [200] * BOOTHS", made="BOOTHS of the test, and its 200s"),
    # 7. settings saved during the event
    Tie(f"({spelled(len(settings_changes()))} kinds of settings saved while the\nreal OpenAI SDK waits 2.5 s",
        f"reliability/test_settings_during_jobs.py::{SETTINGS_TEST}", "running.slow_seconds = 2.5",
        made="the test's parameters, counted"),
    # 8. a wrong clock
    Tie("moves more than 300 s", "boothgate/records/retention.py", "CLOCK_JUMP_SECONDS = 300.0"),
    Tie("with the clock 45, 60 and 400 days behind", f"records/test_clock_retention.py::{CLOCK_BEHIND}",
        "pytest.mark.parametrize('days_behind', [45, 60, 400])"),
    Tie("survive two sweeps", f"records/test_clock_retention.py::{CLOCK_BEHIND}", "range(2)"),
    Tie("folders go after 30 / 40\ndays of kept-age", f"records/test_clock_retention.py::{CLOCK_KEPT}",
        "booth_factory(retention_days=30, trash_retention_days=40)"),
    Tie("a +3-week jump", f"records/test_clock_retention.py::{CLOCK_JUMP}", "21 * retention.DAY",
        scale={"weeks": 7}),
    # 1. compressed provider answers
    Tie(f"(`BOOTHGATE_PROVIDER_ANSWER_MAX_BYTES`, {field_default('provider_answer_max_bytes') >> 20} MB; model lists "
        f"`BOOTHGATE_PROVIDER_LIST_MAX_BYTES`, {field_default('provider_list_max_bytes') >> 20} MB)", "boothgate/settings.py",
        made="the settings' defaults"),
    Tie("with 502 `provider_answer_too_large` before anything parses it", f"providers/test_hostile_answers.py::{BOMB_TEST}",
        "bombed.status == 502"),
    Tie("(1 MB of output per step)", "boothgate/providers/transport.py", "INFLATE_STEP_BYTES = 1 << 20",
        scale={"MB": 1}),
    Tie("(≈300 MB of JSON padding", f"providers/test_hostile_answers.py::{BOMB_TEST}", "hostile.inflated_bytes = 300 << 20"),
    Tie("through the real google-genai SDK: 502,", f"providers/test_hostile_answers.py::{BOMB_TEST}", "bombed.status == 502"),
    Tie("Python's peak allocation during the request under 100 MB over idle", f"providers/test_hostile_answers.py::{BOMB_TEST}",
        "peak - idle < 100 << 20"),
    Tie("limit is 502 `provider_answer_too_large` and the slot's fallback serves",
        "providers/test_hostile_sdk_answers.py::test_an_openai_answer_past_the_limit_is_refused_and_the_fallback_serves",
        "alone.status == 502"),
    Tie("(the smaller of the answer limit and 4 MB", "boothgate/providers/deepseek_writer.py", "TEXT_ANSWER_MAX_BYTES = 4 << 20"),
    Tie("a 307 to another origin carries neither", f"providers/test_hostile_sdk_answers.py::{SDK_REDIRECT_TEST}",
        "(('redirect_307', 'provider_redirect'), ('corrupt_gzip', 'provider_bad_response'))", made="its mode redirect_307"),
    Tie("(a ≈300 MB gzip bomb", "providers/test_hostile_sdk_answers.py::hostile_url", "Hostile(inflated_bytes=300 << 20)"),
    Tie("peak allocation under 100 MB over idle — with", "providers/test_hostile_sdk_answers.py", "PEAK_SLACK = 100 << 20"),
    # 10. form fields and the unproven budget
    Tie("the one budget of\n96 MB", "boothgate/booth/strangers.py", "UNPROVEN_MEMORY_BYTES = 96 * MB"),
    Tie("(40\npassword-less requests", "booth/test_stranger_fields.py::_clients", "[_fields(100, 60_000, seed) for seed in range(40)]"),
    Tie("~6 MB of fields each", "booth/test_stranger_fields.py::_clients", "[_fields(100, 60_000, seed) for seed in range(40)]",
        made="100 fields of 60 000 bytes"),
    Tie("the throttle's\ndelay before the 401", "boothgate/errors.py", "status, code = 401, 'unauthorized'"),
    Tie("answered 429 `unauthenticated_backlog` at once", f"booth/test_stranger_fields.py::{FIELDS_TEST}", "429 in statuses"),
    Tie(f"asserted < {UNPROVEN_MEMORY_BYTES >> 20} + {stranger_fields.SLACK >> 20} MB", f"booth/test_stranger_fields.py::{FIELDS_TEST}",
        "peak - idle < UNPROVEN_MEMORY_BYTES + SLACK", made="the budget and the test's SLACK"),
    Tie(f"(at most {HIGH_WATER_LIMIT >> 10} KB plus one {_SelectorSocketTransport.max_size >> 10} KB socket read)",
        "boothgate/booth/strangers.py", made="uvicorn's flow-control high-water mark and asyncio's read size, read from them"),
    # 2. result limits
    Tie("A refused result is the provider's failure (502\n`provider_bad_response`)", f"run/test_result_admission.py::{ADMIT_TEST}",
        "alone.status == 502"),
    Tie("14200×14200", "run/test_result_admission.py", "SIDE = 14_200", made="SIDE × SIDE"),
    Tie("one declaring 20000×10500", "run/test_result_admission.py::booth", "declared_jpeg(20_000, 10_500)"),
    Tie("each alone → 502, each with a fallback → 200", f"run/test_result_admission.py::{ADMIT_TEST}",
        "alone.status == 502", "served.status == 200"),
    Tie(f"(`BOOTHGATE_IMAGE_WORKER_MEMORY_BYTES`, {field_default('image_worker_memory_bytes') / 2**30:g} GB;",
        "boothgate/settings.py", made="the setting's default"),
    Tie("(work that writes 400 MB, 1.2 GB and 3 GB", f"imaging/test_worker_memory.py::{CEILING_TEST}",
        "pytest.mark.parametrize('megabytes', [400, 1200, 3000])", scale={"GB": 1000}),
    Tie("under a 256 MB ceiling", "imaging/test_worker_memory.py", "CEILING = 256 << 20"),
    Tie("the replacement takes 120 MB of work", f"imaging/test_worker_memory.py::{CEILING_TEST}",
        "await workers.run(time.monotonic() + DEADLINE_SECONDS, worker_tasks.allocate, 120) == 120"),
    Tie("a 90 MP PNG result of a few hundred kB — under the pixel cap,\n~360 MB decoded", f"imaging/test_worker_memory.py::{BIG_TEST}",
        "{'big': solid_png(9_500), 'small': solid_png(600)}", made="9 500² pixels ≈ 90 MP, × 4 bytes decoded"),
    Tie("on the default shape → 502 in well under the deadline while another slot's booth gets\n200",
        f"imaging/test_worker_memory.py::{BIG_TEST}", "big.status == 502", "small.status == 200"),
    Tie("a provider whose own worker task takes 1.2 GB", "imaging/test_worker_memory.py::run",
        "self.context.images.run(request.deadline.at, worker_tasks.allocate, 1200)", scale={"GB": 1000}),
    Tie("→ 502 alone, 200 with a\nfallback", f"imaging/test_worker_memory.py::{OWN_TEST}", "alone.status == 502",
        "served.status == 200"),
    Tie("a result being reshaped or converted is 502", f"imaging/test_worker_memory.py::{BIG_TEST}", "big.status == 502"),
    Tie("a photo 422", "boothgate/errors.py", "status, code = 422, 'corrupt_image'"),
    Tie("a photo 422", "boothgate/imaging/pool.py", "CorruptImage(f'The image could not be decoded: {exc}')",
        made="pool.prepare raises CorruptImage (422, above) for a lost worker"),
    Tie("tab) the provider's failure: 502 `provider_bad_response`, and the slot's fallback serves",
        f"imaging/test_worker_memory.py::{OWN_TEST}", "alone.status == 502"),
    # 9. the live view
    Tie(f"into {tallies.BUCKET_MINUTES}-minute summaries", "boothgate/records/tallies.py", "BUCKET_MINUTES = 10"),
    Tie(f"`BOOTHGATE_JOB_ROWS_DAYS` ({field_default('job_rows_days')})", "boothgate/settings.py", made="the setting's default"),
    # 3. the after-check
    Tie("a result over 12 MP", "boothgate/run/moderation.py", "AFTER_CHECK_IN_PLACE_PIXELS = 12_000_000", scale={"MP": 1e6}),
    Tie("(448 px)", "boothgate/run/moderation.py", "AFTER_CHECK_SIDE = 448"),
    Tie("as-returned transparent PNGs of " + " and ".join(f"{w * h // 10**6}" for w, h in after_check_sizes()) + " MP",
        "run/test_after_check_memory.py", made="the test's parameters: width × height"),
    Tie("grows < 120 MB", f"run/test_after_check_memory.py::{AFTER_TEST}", "peak - idle < 120 * MB"),
    # 11. rotating IPv6 addresses
    Tie(f"default {field_default('ipv6_throttle_prefix')};", "boothgate/settings.py", made="the setting's default"),
    Tie(f"`BOOTHGATE_UNAUTHENTICATED_RECORDS_TOTAL_PER_MINUTE`, {field_default('unauthenticated_records_total_per_minute')})",
        "boothgate/settings.py", made="the setting's default"),
    Tie("(1 000 wrong passwords from random addresses of one /64 and 300 from one /56\nwith the prefix set to 56",
        f"booth/test_rotating_strangers.py::{IPV6_TEST}",
        "pytest.mark.parametrize(('prefix', 'network', 'count'), [(64, '2001:db8:77:12', 1000), (56, '2a02:6b8:1:3', 300)])"),
    Tie("429 after the allowance", f"booth/test_rotating_strangers.py::{IPV6_TEST}", "statuses.count(429) >= count - 10 - 16"),
    Tie("120 clients of one wrong password", f"booth/test_rotating_strangers.py::{GLOBAL_TEST}",
        "[f'2001:db8:{i:x}::1' for i in range(60)] + [f'198.51.100.{i}' for i in range(1, 61)]",
        made="60 IPv6 and 60 IPv4 addresses"),
    # 12. wrong admin passwords
    Tie(f"(`BOOTHGATE_ADMIN_PASSWORD_CHECKS_PER_SECOND`, {field_default('admin_password_checks_per_second'):g}) with at most "
        f"{HASH_WAITING} waiting", "boothgate/operator/credentials.py", "HASH_WAITING = 4", made="the setting's default"),
    Tie("is answered 429 unhashed", f"web/test_admin_guessing.py::{GUESS_TEST}", "429 in statuses"),
    Tie("(400 wrong passwords from 40 addresses", f"web/test_admin_guessing.py::{GUESS_TEST}",
        "len(statuses) == 400 and set(statuses) <= {401, 429}", "range(1, 41)", made="range(1, 41): 40 addresses"),
    Tie("posts 1600×1200 photos", "web/test_admin_guessing.py::_booth_times", "make_jpeg(1600, 1200, seed=next(_seed))"),
    Tie("asserted within 20 % + 0.5 s", f"web/test_admin_guessing.py::{GUESS_TEST}",
        "statistics.median(during) <= statistics.median(normal) * 1.2 + 0.5", made="1.2 × the median, + 0.5 s"),
    # 13. one hung call
    Tie("the median of its last five *successful* calls", "boothgate/booth/capacity.py", "PACE_RUNS = 5"),
]  # fmt: skip
