"""Presets: a set of slots as one JSON file — prompts, options, fallbacks, moderation, result shape, and
the reference, overlay and mask images embedded (base64, with their SHA-256) — to carry an event's
look to another event or another boothgate server.

Import is all or nothing: the whole file is validated first, like a slot save (options by the tab's
provider, fallbacks as the final chain without loops, images decoded like a reference upload); only
then are the image files stored (by content: they replace nothing) and every slot row changed in one
database transaction. A bad or hostile file (too big, not JSON, wrong types, unknown fields, a slot
that does not exist, broken images) gets PresetInvalid and nothing changes. The file names no paths.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from boothgate import errors
from boothgate.imaging.images import sniff
from boothgate.operator import preset_mapping
from boothgate.operator.slot_update import SlotOptionsInvalid, SlotUpdate, validate_moderation
from boothgate.operator.slots import SlotService, _unused
from boothgate.run import fallback_rules
from boothgate.run.moderation import Moderation, slot_mask_name
from boothgate.run.shaping import normal_size
from boothgate.storage.models import Slot, utcnow

FORMAT = "boothgate-preset"
VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024  # three images per slot, a few slots: far below this
MAX_IMAGE_B64 = 16 * 1024 * 1024 * 4 // 3 + 4  # a 16 MB image in base64
# Entries (commas) the parser may build objects for: a real preset has a few thousand (prompts
# included); 64 MB of "[0,0,0,…" would otherwise become a 32-million-item list before validation.
MAX_ENTRIES = 1_000_000


class PresetInvalid(ValueError):
    def __init__(self, errors_: list[dict[str, Any]], status: int = 422) -> None:
        super().__init__("invalid preset")
        self.errors, self.status = errors_, status


class ImageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    data: str = Field(max_length=MAX_IMAGE_B64)


class SlotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot: str = Field(max_length=40)
    enabled: bool = False
    name: str = Field("", max_length=200)
    kind: str = Field("prompt", max_length=32)
    prompt: str = Field("", max_length=8000)
    output_format: Literal["jpeg", "png"] = "jpeg"
    on_failure: Literal["error", "original"] = "error"
    options: dict[str, Any] = Field(default_factory=dict)
    fallback: str | None = Field(None, max_length=40)
    result_shape: Literal["match_photo", "as_returned", "fixed"] = "match_photo"
    result_size: str | None = Field(None, max_length=16)
    moderation: dict[str, Any] | None = None
    reference: ImageIn | None = None
    overlay: ImageIn | None = None
    mask: ImageIn | None = None


class PresetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["boothgate-preset"]
    version: Literal[1]
    name: str = Field("", max_length=200)
    exported_at: str | None = Field(None, max_length=64)
    slots: list[SlotIn] = Field(max_length=200)


@dataclass
class _Ready:
    """One slot of the file, checked, with its images decoded."""

    provider: str
    number: int
    values: dict[str, Any]
    reference: tuple[bytes, str] | None
    overlay: tuple[bytes, str] | None
    mask: bytes | None
    source: str = ""  # the slot's address in the file


class Presets:
    def __init__(self, slots: SlotService, moderation: Moderation | None) -> None:
        self.slots, self.moderation = slots, moderation

    # --- export -------------------------------------------------------------------------------
    async def export(self, keys: list[str], name: str = "") -> dict[str, Any]:
        found = []
        for key in keys:
            target = fallback_rules.parse(key)
            slot = await self.slots.get(*target) if target else None
            if slot is not None:
                found.append(await asyncio.to_thread(self._slot_out, slot))
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "exported_at": utcnow().isoformat(),
            "slots": found,
        }

    def _slot_out(self, slot: Slot) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slot": f"{slot.provider}/{slot.number}",
            "enabled": slot.enabled,
            "name": slot.name,
            "kind": slot.kind,
            "prompt": slot.prompt,
            "output_format": slot.output_format,
            "on_failure": slot.on_failure,
            "options": slot.options or {},
            "fallback": slot.fallback,
            "result_shape": slot.result_shape,
            "result_size": slot.result_size,
            "moderation": slot.moderation,
            "reference": _image_out(self.slots.reference_path(slot)),
            "overlay": _image_out(self.slots.overlay_file(slot)),
            "mask": None,
        }
        if self.moderation is not None:
            out["mask"] = _image_out(self.moderation.find(slot_mask_name(slot.provider, slot.number)))
        return out

    # --- import -------------------------------------------------------------------------------
    async def load(self, raw: bytes) -> PresetIn:
        if len(raw) > MAX_FILE_BYTES:
            raise PresetInvalid([_err([], f"The preset file is larger than {MAX_FILE_BYTES:,} bytes.")], 413)
        if raw.count(b",") > MAX_ENTRIES:
            raise PresetInvalid([_err([], f"The file has more than {MAX_ENTRIES:,} entries: not a boothgate preset.")])
        try:
            data = await asyncio.to_thread(json.loads, raw)
        except (ValueError, RecursionError) as exc:
            raise PresetInvalid([_err([], f"The file is not a boothgate preset (not JSON: {exc}).")]) from exc
        if not isinstance(data, dict):
            raise PresetInvalid([_err([], "The file is not a boothgate preset (no JSON object).")])
        try:
            return PresetIn.model_validate(data)
        except ValidationError as exc:
            raise PresetInvalid(
                [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]
            ) from exc

    async def check(
        self, preset: PresetIn, event_slots: list[str] | None = None, mapping: dict[str, str] | None = None
    ) -> list[_Ready]:
        """Everything a slot save checks, for every slot of the file, before anything changes. The
        slots are placed by preset_mapping.plan (onto `event_slots`, or by `mapping`)."""
        ready: list[_Ready] = []
        tabs = self.slots.registry.tabs
        keys: list[str] = []
        for index, item in enumerate(preset.slots):
            parsed = fallback_rules.parse(item.slot)
            if parsed is None or parsed[0] not in tabs:
                raise PresetInvalid([_err(["slots", index, "slot"], f"{item.slot!r} is not a slot of this server.")])
            key = f"{parsed[0]}/{parsed[1]}"
            if key in keys:
                raise PresetInvalid([_err(["slots", index, "slot"], f"Slot {key} appears twice.")])
            keys.append(key)
        try:
            placed = preset_mapping.plan(keys, event_slots, mapping or {})
        except preset_mapping.MappingInvalid as exc:
            raise PresetInvalid([_err(["mapping"], exc.message)]) from exc
        for index, item in enumerate(preset.slots):
            loc: list[Any] = ["slots", index]
            source = keys[index]
            tab, number = placed[source].split("/")
            target = (tab, int(number))
            values = item.model_dump(exclude={"slot", "reference", "overlay", "mask"})
            values["fallback"] = preset_mapping.moved_fallback(item.fallback, placed)
            try:
                change = SlotUpdate.model_validate({k: v for k, v in values.items() if k != "fallback"})
                values["kind"] = change.kind.value if change.kind is not None else "prompt"
                values["options"] = self.slots.validate_options(target[0], item.options)
                if item.moderation is not None:
                    values["moderation"] = validate_moderation(item.moderation)
                values["result_size"] = normal_size(item.result_size) if item.result_size else None
            except ValidationError as exc:
                raise PresetInvalid(
                    [{"loc": [*loc, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
                ) from exc
            except SlotOptionsInvalid as exc:
                raise PresetInvalid([{**e, "loc": [*loc, *e["loc"]]} for e in exc.errors]) from exc
            except ValueError as exc:
                raise PresetInvalid([_err([*loc, "result_size"], str(exc))]) from exc
            if values["result_shape"] == "fixed" and not values["result_size"]:
                raise PresetInvalid([_err([*loc, "result_size"], "A fixed result shape needs a size.")])
            reference = await self._image(item.reference, [*loc, "reference"], "reference")
            overlay = await self._image(item.overlay, [*loc, "overlay"], "overlay")
            mask = await self._image(item.mask, [*loc, "mask"], "mask")
            ready.append(_Ready(target[0], target[1], values, reference, overlay, mask[0] if mask else None, source))
        await self._check_fallbacks(ready)
        return ready

    async def _image(self, image: ImageIn | None, loc: list[Any], what: str) -> tuple[bytes, str] | None:
        if image is None:
            return None
        try:
            data = await asyncio.to_thread(base64.b64decode, image.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PresetInvalid([_err(loc, f"The {what} is not valid base64.")]) from exc
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise PresetInvalid([_err(loc, f"The {what}'s bytes do not match its sha256 (damaged file).")])
        imaging = self.slots.imaging
        try:
            if what == "overlay":
                info = await imaging.check_overlay(data)
                return data, str(info["format"])
            checked = await imaging.inspect(data)
            await imaging.prepare(data, 250_000)  # a real decode: refuses truncated files
            return data, checked.format
        except errors.BoothError as exc:
            raise PresetInvalid([_err(loc, f"The {what}: {exc.message}")]) from exc
        except Exception as exc:  # whatever a hostile image makes the decoder raise
            raise PresetInvalid([_err(loc, f"The {what} is not a usable image ({type(exc).__name__}).")]) from exc

    async def _check_fallbacks(self, ready: list[_Ready]) -> None:
        """The chains as they will be after the import: every target exists, no loop, not too long."""
        final: dict[tuple[str, int], str | None] = {(s.provider, s.number): s.fallback for s in await self.slots.find()}
        for item in ready:
            final[(item.provider, item.number)] = item.values["fallback"] or None

        async def fallback_of(tab: str, number: int) -> str | None:
            if (tab, number) not in final:
                raise LookupError(f"{tab}/{number}")
            return final[(tab, number)]

        for index, item in enumerate(ready):
            value = item.values["fallback"]
            if not value:
                item.values["fallback"] = None
                continue
            try:
                item.values["fallback"] = await fallback_rules.check(
                    item.provider, item.number, value, self.slots.registry.tabs, fallback_of
                )
            except fallback_rules.FallbackInvalid as exc:
                raise PresetInvalid([_err(["slots", index, "fallback"], str(exc))]) from exc

    async def apply(self, ready: list[_Ready]) -> list[str]:
        """Store the images (by content), then change every slot in one transaction."""
        media = self.slots.media
        files: list[tuple[str | None, str | None, str | None, str | None]] = []
        for item in ready:
            ref_rel = ref_sha = ov_rel = ov_sha = None
            try:
                if item.reference is not None:
                    data, kind = item.reference
                    path = await asyncio.to_thread(media.store_content, "references", data, kind)
                    ref_rel, ref_sha = media.relative(path), hashlib.sha256(data).hexdigest()
                if item.overlay is not None:
                    data, kind = item.overlay
                    digest = hashlib.sha256(data).hexdigest()
                    path = await asyncio.to_thread(media.write_overlay, item.provider, item.number, data, kind, digest)
                    ov_rel, ov_sha = media.relative(path), digest
            except OSError as exc:
                raise errors.StorageFailed(f"Could not store the preset's images: {exc.strerror or exc}.") from exc
            files.append((ref_rel, ref_sha, ov_rel, ov_sha))
        old: list[str] = []
        async with self.slots.db.write() as session:
            for item, (ref_rel, ref_sha, ov_rel, ov_sha) in zip(ready, files, strict=True):
                slot = await session.scalar(
                    select(Slot).where(Slot.provider == item.provider, Slot.number == item.number)
                )
                if slot is None:  # a tab's 20 slots exist from the first start
                    raise errors.SlotNotFound(f"There is no slot {item.provider}/{item.number}.")
                for key, value in item.values.items():
                    setattr(slot, key, value)
                old += [p for p in (slot.reference_path, slot.overlay_path) if p]
                slot.reference_path, slot.reference_sha256 = ref_rel, ref_sha
                slot.overlay_path, slot.overlay_sha256 = ov_rel, ov_sha
                slot.revision += 1
                slot.updated_at = utcnow()
            await session.flush()
            unused = [u for path in set(old) if (u := await _unused(session, path, keep=None))]
        for relative in unused:
            media.holds.discard(relative)
        if self.moderation is not None:
            for item in ready:
                name = slot_mask_name(item.provider, item.number)
                if item.mask is not None:
                    await asyncio.to_thread(self.moderation.store, name, item.mask)
                else:
                    await asyncio.to_thread(self.moderation.remove, name)
        return [f"{item.provider}/{item.number}" for item in ready]


def _err(loc: list[Any], message: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": "value_error"}


def _image_out(path: Any) -> dict[str, str] | None:
    if path is None:
        return None
    data = path.read_bytes()
    if sniff(data[:16]) is None:
        return None
    return {"sha256": hashlib.sha256(data).hexdigest(), "data": base64.b64encode(data).decode("ascii")}
