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


# ------------------------------------------------------------------ the table (issue 11, finding 4)

KNOWN = "Zq8-hunter2-prod-db"

#: (text, what must not survive, what must survive)
MASKED = [
    ('{"password": "hunter2x"}', "hunter2x", '{"password": "[REDACTED]"}'),
    ('token: "abc.def-ghi"', "abc.def-ghi", 'token: "[REDACTED]"'),
    ("{'api_key': 'k3y-v4lue'}", "k3y-v4lue", "{'api_key': '[REDACTED]'}"),
    ("PGPASSWORD hunter2x psql -h db", "hunter2x", "psql -h db"),
    ("export DB_PASS=hunter2x", "hunter2x", "DB_PASS=[REDACTED]"),
    ("pg_dump --password hunter2x app", "hunter2x", "--password [REDACTED] app"),
    ("cli --db-password=hunter2x --verbose", "hunter2x", "--verbose"),
    ("mysql -h db -u app -phunter2x shop", "hunter2x", "-p[REDACTED] shop"),
    ("Authorization: Basic dXNlcjpodW50ZXIyeA==", "dXNlcjpodW50ZXIyeA", "Authorization: Basic [REDACTED]"),
    ("authorization=Digest username=bob, response=6629fae4", "6629fae4", "authorization="),
    ("curl -H 'Authorization: Bearer abcdefghijkl'", "abcdefghijkl", "Bearer [REDACTED]'"),
    ("sent Basic dXNlcjpodW50ZXIyeA== upstream", "dXNlcjpodW50ZXIyeA", "upstream"),
    ("postgres://app:p@ss@word@db:5432/app", "ss@word", "postgres://app:[REDACTED]@db:5432/app"),
    ("redis://:s3cr3tpw@cache:6379/0", "s3cr3tpw", "redis://:[REDACTED]@cache"),
    ("MYSQL_PWD=hunter2x", "hunter2x", "MYSQL_PWD=[REDACTED]"),
    ("SENTRY_DSN=https://abc123def@o1.ingest.sentry.io/5", "abc123def", "SENTRY_DSN=[REDACTED]"),
    ("JWT_SIGNING=sign1ngkey99", "sign1ngkey99", "JWT_SIGNING="),
    ("STRIPE_SK: sk_notshaped99", "sk_notshaped99", "STRIPE_SK:"),
    ("spring.datasource.password=hunter2x", "hunter2x", "password=[REDACTED]"),
    ("authToken=abcd1234", "abcd1234", "authToken=[REDACTED]"),
    (
        "hook https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX ok",
        "XXXXXXXXXXXXXXXX",
        "https://hooks.slack.com/[REDACTED] ok",
    ),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3",
        "jwt [REDACTED]",
    ),
    ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "key [REDACTED]"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA123", "google [REDACTED]"),
    ("gitlab glpat-abcdefghij1234567890", "glpat-abcdefghij", "gitlab [REDACTED]"),
    ("github ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdef", "github [REDACTED]"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE", "aws [REDACTED] here"),
    ("openai sk-proj-abcdefghijklmnopqrstuvwx", "abcdefghijklmnop", "openai [REDACTED]"),
    ("slack xoxb-1234567890-abcdefghij", "xoxb-123", "slack [REDACTED]"),
    ("app xapp-1-A0123-4567-abcdef", "A0123-4567", "app [REDACTED]"),
    (
        "fine-grained github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789",
        "11ABCDEFG",
        "fine-grained [REDACTED]",
    ),
    ("stripe whsec_abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnop", "stripe [REDACTED]"),
    ("npm npm_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnop", "npm [REDACTED]"),
    ("gitlab deploy gldt-abcdefghij1234567890", "abcdefghij1234567890", "deploy [REDACTED]"),
    # a known secret in its other forms
    (f"ERROR auth failed for app using {KNOWN}", KNOWN, "ERROR auth failed for app using [REDACTED]"),
    ("login?pw=Zq8-hunter2-prod-db%21", "hunter2-prod", "login?pw=[REDACTED]"),
    ("dsn postgres://app:Zq8%2Dhunter2%2Dprod%2Ddb@db/app", "hunter2%2Dprod", "@db/app"),
]


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


#: lines that must come out exactly as they went in
INTACT = [
    "sha256 9f86d081884c7d659a2feaea0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0  backup.sql.gz",
    "2024-05-01T10:00:00Z INFO request handled path=/api/v1/orders/12345 status=200 duration_ms=12.5",
    "keyboard interrupt received, shutting down",
    "skip: nothing to do",
    "password reset email sent to user 42",
    "task=send-mail disk: 81% monkey=business",
    "INVALID PASSWORD for user bob",
    "psql -h db -p 5432 -U app",
    "Basic authentication failed for bob",
    "token expired, please log in again",
    "DB_PASSWORD_FILE=/run/secrets/db_password",
    "TOKEN_TTL=3600 PASSWORD_MIN_LENGTH=12",
    "PagerDuty refused the event (HTTP 400); check PAGERDUTY_ROUTING_KEY. Alerts to pagerduty are kept",
    "compass bypass=true",
    "GET https://user@example.com/path 200",
    "ask for the key to the office",
]


def test_the_table_of_secrets_is_masked():
    r = Redactor()
    r.learn_env({"DB_PASSWORD": KNOWN})
    for text, secret, kept in MASKED:
        out = r.text(text)
        assert secret not in out, (text, out)
        assert kept in out, (text, out)
    # base64 of a known secret, alone or inside a longer encoded text (e.g. a Basic header)
    for encoded in (_b64(KNOWN), _b64(f"app:{KNOWN}"), _b64(f"xy{KNOWN}z")):
        out = r.text(f"payload {encoded} end")
        assert encoded[4:-4] not in out and out.startswith("payload ") and out.endswith(" end"), out


def test_lines_that_hold_no_secret_stay_intact():
    r = Redactor()
    r.learn_env({"DB_PASSWORD": KNOWN, "PORT": "5432"})
    for line in INTACT:
        assert r.text(line) == line


def test_secret_names_widened():
    for name in ("DB_PASS", "MYSQL_PWD", "SENTRY_DSN", "JWT_SIGNING", "STRIPE_SK", "PGPASSWORD", "apiKey",
                 "GCP_CREDENTIALS", "PRIVATE_KEY", "SESSION_SECRET", "authToken", "db.password"):  # fmt: skip
        assert is_secret_name(name), name
    for name in ("PWD", "DISK_PATH", "TASK_QUEUE", "KEYBOARD_LAYOUT", "DB_PASSWORD_FILE", "TOKEN_TTL", "BYPASS_CACHE",
                 "SKIP_MIGRATIONS", "PASSENGER_COUNT", "AUTHOR"):  # fmt: skip
        assert not is_secret_name(name), name


def test_config_masks_every_secret_name_and_learns_the_values():
    r = Redactor()
    env = {"DB_PASS": "pa55-one", "MYSQL_PWD": "pa55-two", "SENTRY_DSN": "https://k3y@o1.sentry.io/5",
           "JWT_SIGNING": "pa55-three", "STRIPE_SK": "pa55-four", "DATABASE_URL": "postgres://a:pa55-five@db/a",
           "PLAIN": "visible"}  # fmt: skip
    shown = r.env(env)
    for name in ("DB_PASS", "MYSQL_PWD", "SENTRY_DSN", "JWT_SIGNING", "STRIPE_SK"):
        assert shown[name] == MASK, name
    assert shown["DATABASE_URL"] == f"postgres://a:{MASK}@db/a" and shown["PLAIN"] == "visible"
    r.learn_env(env)
    out = r.text("got pa55-one pa55-two pa55-three pa55-four pa55-five k3y-less")
    assert "pa55" not in out


def test_an_adversarial_line_is_redacted_correctly():
    r = Redactor()
    line = "token" * 819 + "=hunter2x"
    assert r.text(line) == "token" * 819 + f"={MASK}"
    assert r.text("token" * 820) == "token" * 820
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert r.text(f"jwt={jwt} eyJ{'eyJ' * 1000}") == f"jwt={MASK} eyJ{'eyJ' * 1000}"
    many = " ".join(["password=hunter2x"] * 300)
    assert r.text(many) == " ".join([f"password={MASK}"] * 300)
    big = "\n".join([f"line {i} password=hunter2x ok" for i in range(20000)])  # redacted in chunks
    assert r.text(big) == "\n".join([f"line {i} password={MASK} ok" for i in range(20000)])


def test_many_headers_on_many_lines_are_each_masked_once():
    text = "\n".join(["authorization: Basic dXNlcjpwYXNzd29yZA=="] * 2000)
    out = Redactor().text(text)
    assert out == "\n".join([f"authorization: Basic {MASK}"] * 2000)


def test_quoted_values_cut_or_empty():
    r = Redactor()
    assert r.text('password="hunter2x') == f"password={MASK}"  # a line cut inside the quotes
    assert r.text('password="" user=bob') == 'password="" user=bob'
    assert r.text('x password="a\\"b" y') == f'x password="{MASK}" y'
