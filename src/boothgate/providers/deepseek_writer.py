"""DeepSeek's stage: look at the photo (and the reference) and write the renderer's instruction.

One chat completion through the `openai` SDK (built on `httpx2`), pointed at DeepSeek's base URL.
The SDK's 600 s timeout and 2 retries are switched off: the client has `max_retries=0`, each call gets
`timeout=` the stage's time left, and the whole call runs under an asyncio timeout as well, because
httpx timeouts are per read — DeepSeek keeps a busy connection alive with blank lines, and every
blank line would restart a read timeout.

Whatever goes wrong becomes a `StageFailed` with a stable code and an operator-facing reason; the
provider then renders with the slot's own prompt instead.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from boothgate.deadline import Deadline
from boothgate.errors import BoothError
from boothgate.providers import transport
from boothgate.providers.base import Kind, PreparedImage
from boothgate.providers.openai_wire import retry_after_seconds

if TYPE_CHECKING:
    from boothgate.settings import Settings

log = logging.getLogger(__name__)

# Added to every system prompt, so an operator editing the prompt cannot break the answer format.
# DeepSeek's JSON mode also needs the word "json" in the prompt.
OUTPUT_CONTRACT = (
    "\n\nAnswer with a JSON object only, in this shape: "
    '{"people": <number of people in the guest\'s photo>, "instruction": "<the instruction, in English, '
    'at most 180 words, referring to the images as the first image and the second image>"}. '
    "If the guest's photo shows nobody, or you cannot help with it, answer "
    '{"people": 0, "instruction": "", "problem": "<short reason>"}.'
)

KIND_WORDS = {
    Kind.face_swap: "face swap: the guests' faces go into the reference scene",
    Kind.background: "background: the guests are placed into the reference background",
    Kind.prompt: "restyle: the guest's photo is restyled as the operator describes",
}
REFERENCE_WORDS = {
    Kind.face_swap: "the reference scene",
    Kind.background: "the new background",
    Kind.prompt: "a style example",
}
# Enough for a 180-word instruction in JSON; thinking tokens come out of the same allowance.
MAX_TOKENS = 900
MAX_TOKENS_THINKING = 4000
MAX_INSTRUCTION_CHARS = 4000
# The largest chat answer read (counted after decompression): a 4,000-token answer is ~20 kB, the model list of
# an OpenAI-compatible service a few hundred kB.
TEXT_ANSWER_MAX_BYTES = 4 << 20


@dataclass
class Written:
    instruction: str
    people: int | None
    model: str
    usage: dict[str, int]
    cost_usd: float


@dataclass
class StageFailed(Exception):
    """The stage produced no instruction. `operator_error` is set when the operator must act."""

    code: str
    reason: str
    operator_error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    wait: float | None = None  # a 429's Retry-After: with several keys this key rests for it

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


def system_prompt(settings: Settings, kind: Kind) -> str:
    prompts = {
        Kind.face_swap: settings.deepseek_system_prompt_face_swap,
        Kind.background: settings.deepseek_system_prompt_background,
        Kind.prompt: settings.deepseek_system_prompt_prompt,
    }
    return prompts[kind].strip() + OUTPUT_CONTRACT


def user_content(kind: Kind, prompt: str, photo: PreparedImage, reference: PreparedImage | None) -> list[Any]:
    """The slot in words, then the images in the order the renderer will get them."""
    lines = [f"Slot kind: {KIND_WORDS[kind]}.", f"Operator's note: {prompt.strip() or '(none)'}"]
    lines.append("The first image is the guest's photo.")
    if reference is not None:
        lines.append(f"The second image is {REFERENCE_WORDS[kind]}.")
    content: list[Any] = [{"type": "text", "text": "\n".join(lines)}, _image_block(photo)]
    if reference is not None:
        content.append(_image_block(reference))
    return content


def _image_block(image: PreparedImage) -> dict[str, Any]:
    data = base64.b64encode(image.data).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{image.mime};base64,{data}"}}


class InstructionWriter:
    """Owns the SDK client; one `write` per job."""

    def __init__(self, settings: Settings, api_key: str) -> None:
        self.settings = settings
        self._key = api_key
        self.client = AsyncOpenAI(
            api_key=api_key,
            base_url=settings.deepseek_base_url.strip().rstrip("/"),
            max_retries=0,
            timeout=settings.deepseek_stage_seconds,
            # Bounded like every provider answer (issue 31, class 1); an instruction is a few kB of JSON.
            http_client=transport.sdk_http_client(  # type: ignore[arg-type]  # the SDK takes an httpx client too
                lambda: min(settings.provider_answer_max_bytes, TEXT_ANSWER_MAX_BYTES), settings.deepseek_stage_seconds
            ),
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def write(
        self,
        kind: Kind,
        prompt: str,
        photo: PreparedImage,
        reference: PreparedImage | None,
        stage: Deadline,
        *,
        thinking: bool = False,
    ) -> Written:
        """The instruction, or `StageFailed`. Never outlives `stage`."""
        model = self.settings.deepseek_model
        try:
            async with stage.timeout():
                completion = await self.client.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": system_prompt(self.settings, kind)},
                        {"role": "user", "content": user_content(kind, prompt, photo, reference)},
                    ],
                    response_format={"type": "json_object"},
                    max_tokens=MAX_TOKENS_THINKING if thinking else MAX_TOKENS,
                    extra_body={"thinking": {"type": "enabled" if thinking else "disabled"}},
                    timeout=max(0.01, stage.remaining()),
                )
        except TimeoutError:
            raise StageFailed("timeout", "DeepSeek did not answer within the stage budget.") from None
        except openai.APIStatusError as exc:
            raise self._status_failure(exc, model) from None
        except openai.APITimeoutError:
            raise StageFailed("timeout", "DeepSeek did not answer within the stage budget.") from None
        except openai.APIConnectionError as exc:
            if isinstance(exc.__cause__, httpx.DecodingError):  # compressed data that does not inflate
                raise StageFailed("bad_answer", "DeepSeek's answer could not be read (corrupt compression).") from None
            raise StageFailed("connection", f"Could not reach DeepSeek ({type(exc.__cause__).__name__}).") from None
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise StageFailed("bad_answer", f"DeepSeek's answer could not be read ({type(exc).__name__}).") from None
        except BoothError as exc:  # the bounded transport refused the answer (too large, a redirect elsewhere)
            raise StageFailed("bad_answer", f"DeepSeek's answer was refused: {exc.message}") from None
        return self._read(completion, model)

    # --- reading the answer -------------------------------------------------------------------
    def _read(self, completion: object, model: str) -> Written:
        if not isinstance(completion, ChatCompletion):  # the SDK returns text for a non-JSON content type
            raise StageFailed("bad_answer", "DeepSeek's answer was not a chat completion.")
        usage = _usage(completion)
        cost = self.cost(usage)
        choices = getattr(completion, "choices", None) or []
        if not choices:
            raise StageFailed("bad_answer", "DeepSeek's answer had no choices.", usage=usage, cost_usd=cost)
        choice = choices[0]
        finish = getattr(choice, "finish_reason", None)
        content = (getattr(getattr(choice, "message", None), "content", None) or "").strip()
        if finish == "content_filter":
            raise StageFailed("refused", "DeepSeek refused to describe this photo.", usage=usage, cost_usd=cost)
        if finish == "length":
            raise StageFailed("truncated", "DeepSeek's instruction was cut off.", usage=usage, cost_usd=cost)
        if finish == "insufficient_system_resource":
            raise StageFailed("unavailable", "DeepSeek ran out of capacity.", usage=usage, cost_usd=cost)
        data = _json_object(content)
        if data is None:
            raise StageFailed("bad_answer", "DeepSeek's answer was not the expected JSON.", usage=usage, cost_usd=cost)
        instruction = str(data.get("instruction") or "").strip()[:MAX_INSTRUCTION_CHARS]
        if not instruction:
            problem = str(data.get("problem") or "").strip()[:300]
            if problem:
                raise StageFailed("refused", f"DeepSeek declined: {problem}", usage=usage, cost_usd=cost)
            raise StageFailed("empty", "DeepSeek wrote an empty instruction.", usage=usage, cost_usd=cost)
        people = data.get("people")
        return Written(
            instruction,
            people if isinstance(people, int) and not isinstance(people, bool) else None,
            getattr(completion, "model", None) or model,
            usage,
            cost,
        )

    def cost(self, usage: dict[str, int]) -> float:
        settings = self.settings
        dollars = (
            usage.get("prompt_tokens", 0) * settings.deepseek_price_input_per_mtok_usd
            + usage.get("completion_tokens", 0) * settings.deepseek_price_output_per_mtok_usd
        ) / 1_000_000
        return round(dollars, 6)

    # --- errors -------------------------------------------------------------------------------
    def _status_failure(self, exc: openai.APIStatusError, model: str) -> StageFailed:
        status = exc.status_code
        message = self._scrub(_error_message(exc.body))
        if status == 402:
            return StageFailed(
                "balance_empty",
                "DeepSeek balance is empty (402 Insufficient Balance).",
                "DeepSeek balance is empty: top up the DeepSeek account at platform.deepseek.com. "
                "Until then DeepSeek slots render with their own prompt.",
            )
        if status in (401, 403):
            return StageFailed(
                "auth",
                f"DeepSeek rejected the API key ({status}).",
                "DeepSeek rejected the API key: check BOOTHGATE_DEEPSEEK_API_KEY on the settings page.",
            )
        if status == 429:
            return StageFailed(
                "rate_limited",
                "DeepSeek is at its concurrency limit (429).",
                wait=retry_after_seconds(exc.response.headers),
            )
        if status >= 500:
            return StageFailed("unavailable", f"DeepSeek is unavailable ({status}).")
        operator = None
        if status == 404 or "model" in message.lower():
            operator = (
                f"DeepSeek did not accept the model {model!r} ({status}): check BOOTHGATE_DEEPSEEK_MODEL "
                "on the settings page (it must be a vision model such as deepseek-flash)."
            )
        return StageFailed("rejected", f"DeepSeek rejected the request ({status}): {message}"[:400], operator)

    def _scrub(self, text: str) -> str:
        """Error texts may echo the key back; it never goes into notes or logs."""
        return text.replace(self._key, "***") if self._key else text


def _error_message(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message") or "")[:300]
        return str(body.get("message") or inner or "")[:300]
    return str(body or "")[:300]


def _usage(completion: ChatCompletion) -> dict[str, int]:
    usage = getattr(completion, "usage", None)
    if usage is None:
        return {}
    figures = {name: getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {name: value for name, value in figures.items() if isinstance(value, int)}


def _json_object(content: str) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def close_quietly(writer: InstructionWriter | None) -> None:
    if writer is None:
        return
    try:
        await writer.aclose()
    except Exception:  # closing must not break a settings change
        log.debug("closing the DeepSeek client failed", exc_info=True)
