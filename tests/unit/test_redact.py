"""The one redactor: learnt secrets, URL passwords, token shapes, JSON data."""

from __future__ import annotations

from bot.config.redact import MASK, Redactor, is_secret_name


def test_learnt_values_are_masked_wherever_they_appear():
    r = Redactor()
    r.learn_env({"DB_PASSWORD": "hunter2-very-secret", "PLAIN": "visible-value", "API_TOKEN": "tok-123456"})
    out = r.text("connecting with hunter2-very-secret and tok-123456 as visible-value")
    assert "hunter2-very-secret" not in out and "tok-123456" not in out
    assert "visible-value" in out
    assert out.count(MASK) == 2


def test_secret_names():
    for name in ("DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "SLACK_TOKEN", "api_key", "GCP_CREDENTIALS", "PASSWD"):
        assert is_secret_name(name), name
    for name in ("PLAIN", "FEATURE_CHECKOUT", "PORT", "DATABASE_HOST"):
        assert not is_secret_name(name), name


def test_token_shapes_and_urls():
    r = Redactor()
    samples = {
        "bot xoxb-1234567890-abcdefghij": "xoxb-1234567890",
        "app xapp-1-A0123-4567-abcdef": "xapp-1-A0123",
        "user xoxp-1111-2222-3333-abcd": "xoxp-1111",
        "aws AKIAIOSFODNN7EXAMPLE here": "AKIAIOSFODNN7EXAMPLE",
        "postgres://app:s3cr3tpw@db:5432/app": "s3cr3tpw",
        "Authorization: Bearer abcdefghijklmnop": "abcdefghijklmnop",
        "password=letmein123 user=bob": "letmein123",
    }
    for text, secret in samples.items():
        out = r.text(text)
        assert secret not in out, (text, out)
        assert MASK in out
    assert r.text("postgres://app:s3cr3tpw@db:5432/app") == f"postgres://app:{MASK}@db:5432/app"


def test_pem_private_key_is_masked_whole():
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----"
    out = Redactor().text(f"key:\n{pem}\nafter")
    assert "MIIEpAIBAAKCAQEA" not in out and out.endswith("after")


def test_data_is_redacted_recursively_and_keeps_shape():
    r = Redactor(["bot-own-signing-secret"])
    data = {"a": ["x bot-own-signing-secret y", {"b": "xoxb-123456789-abc"}], "n": 3, "t": True, "none": None}
    out = r.data(data)
    assert out["n"] == 3 and out["t"] is True and out["none"] is None
    assert "bot-own-signing-secret" not in str(out) and "xoxb-123456789" not in str(out)


def test_short_values_are_not_learnt():
    r = Redactor()
    r.learn_env({"SECRET_FLAG": "on"})
    assert r.text("turn it on") == "turn it on"


def test_env_for_display():
    r = Redactor()
    shown = r.env({"DB_PASSWORD": "abc", "URL": "http://u:pw123456@h/"})
    assert shown["DB_PASSWORD"] == MASK and "pw123456" not in shown["URL"]
