"""The search for learnt secrets' forms (issue 11, finding 5: throughput): one search per rare anchor
character instead of one scan per form must find exactly what the scans find."""

from __future__ import annotations

import random
import string

from bot.config.redact import MASK, Redactor, anchored_searches
from bot.config.redact_names import variants

ALPHABET = string.ascii_letters + string.digits + "+/=_-.:@%&;\"'\\ é€\u2028"


def _holds(text: str, forms: tuple[str, ...]) -> bool:
    return any(search.search(text) is not None for _, search in anchored_searches(forms))


def test_the_anchored_searches_find_a_form_exactly_when_it_is_there():
    rng = random.Random(11)
    for _ in range(300):
        secret = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(4, 40)))
        forms = tuple(sorted(variants(secret), key=lambda f: (-len(f), f)))
        form = rng.choice(forms)
        noise = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 200)))
        at = rng.randint(0, len(noise))
        assert _holds(noise[:at] + form + noise[at:], forms), (secret, form)
        # every strict part of a form is not a form: the search must not take it for one
        cut = form[: rng.randint(1, len(form) - 1)]
        assert _holds(noise[:at] + cut + noise[at:], forms) == any(f in noise[:at] + cut + noise[at:] for f in forms)


def test_every_form_of_every_learnt_secret_is_masked_in_short_and_long_texts():
    rng = random.Random(5)
    secrets = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(6, 30))) for _ in range(12)]
    redactor = Redactor(secrets)
    filler = "2024-05-01T10:00:00.123Z INFO  [worker-3] order 1234567 shipped status=200 user_id=42\n"
    for secret in secrets:
        for form in variants(secret):
            for text in (f"a {form} b", filler * 1000 + f"x{form}y\n" + filler * 1000):  # one chunk, many
                shown = redactor.text(text)
                assert form not in shown and MASK in shown, (secret, form)
