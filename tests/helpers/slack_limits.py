"""Slack's Block Kit limits, checked as Slack checks them (``invalid_blocks`` with a JSON pointer).

Used by the Web API stand-in to refuse what Slack would refuse, and by tests directly.
"""

from __future__ import annotations

from typing import Any


def _text_errors(obj: Any, pointer: str, limit: int) -> list[str]:
    """Errors of a text object (``{"type": "plain_text"|"mrkdwn", "text": ...}``), as Slack words them."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return [f"must provide an object with a text string [json-pointer:{pointer}]"]
    text = obj["text"]
    if not text:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{pointer}/text]"]
    return []


def _element_errors(element: Any, pointer: str) -> list[str]:
    """Errors of an interactive element; buttons are checked in full."""
    if not isinstance(element, dict):
        return [f"must be an object [json-pointer:{pointer}]"]
    errors: list[str] = []
    action_id = element.get("action_id")
    if isinstance(action_id, str) and len(action_id) > 255:
        errors.append(f"must be less than 256 characters [json-pointer:{pointer}/action_id]")
    if element.get("type") == "button":
        errors += _text_errors(element.get("text"), f"{pointer}/text", 75)
        value = element.get("value")
        if isinstance(value, str) and len(value) > 2000:
            errors.append(f"must be less than 2001 characters [json-pointer:{pointer}/value]")
        url = element.get("url")
        if isinstance(url, str) and len(url) > 3000:
            errors.append(f"must be less than 3001 characters [json-pointer:{pointer}/url]")
    return errors


def block_errors(blocks: Any, *, max_blocks: int = 50) -> list[str]:
    """Why Slack would answer ``invalid_blocks`` for ``blocks`` (empty when it would accept them).

    Checked: at most ``max_blocks`` blocks; block_id 255; section text 3,000 and non-empty, at most 10
    fields of 2,000; header text 150; actions at most 25 elements; context at most 10 elements;
    button text 75, value 2,000, url 3,000; action_id 255.
    """
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{ptr}]")
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str) and len(block_id) > 255:
            errors.append(f"must be less than 256 characters [json-pointer:{ptr}/block_id]")
        kind = block["type"]
        if kind == "section":
            fields = block.get("fields") or []
            if "text" in block or not fields:
                errors += _text_errors(block.get("text"), f"{ptr}/text", 3000)
            if len(fields) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{ptr}/fields]")
            for j, item in enumerate(fields):
                errors += _text_errors(item, f"{ptr}/fields/{j}", 2000)
            if "accessory" in block:
                errors += _element_errors(block["accessory"], f"{ptr}/accessory")
        elif kind == "header":
            errors += _text_errors(block.get("text"), f"{ptr}/text", 150)
        elif kind in ("actions", "context"):
            elements = block.get("elements")
            limit = 25 if kind == "actions" else 10
            if not isinstance(elements, list) or not elements:
                errors.append(f"must provide at least 1 element [json-pointer:{ptr}/elements]")
            elif len(elements) > limit:
                errors.append(f"no more than {limit} items allowed [json-pointer:{ptr}/elements]")
            elif kind == "actions":
                for j, element in enumerate(elements):
                    errors += _element_errors(element, f"{ptr}/elements/{j}")
    return errors
