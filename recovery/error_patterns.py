"""The classifier's data: which error texts mean which failure class, tried in order.

Sources for every text: shared/X_API_NOTES.md (X's docs and observed bodies), tweepy's
`errors.py`, requests/urllib3 messages, SQLAlchemy/driver messages, other X clients' errors.
Order matters: specific before generic (a usage cap is also a 429, a duplicate also a 403, a
database "connection refused" also a connection error). `v1code=N` tokens are added by the
classifier for every v1.1 error code it finds, `errno=NAME` for OS error numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from utils.failure_classes import FailureClass as F


@dataclass(frozen=True)
class Rule:
    """One pattern: matches when the status constraint (if any) holds and the regex is found."""

    id: str
    failure_class: F
    pattern: re.Pattern[str] | None = None
    statuses: frozenset[int] | None = None


def _rule(rule_id: str, failure_class: F, regex: str | None = None,
          statuses: tuple[int, ...] | None = None) -> Rule:
    return Rule(rule_id, failure_class, re.compile(regex, re.I) if regex else None,
                frozenset(statuses) if statuses else None)


def _codes(*codes: int) -> str:
    return r"\bv1code=(?:{})\b".format("|".join(str(code) for code in codes))


# A v2 problem `type` ends with /problems/<kind>, on any host (api.twitter.com, api.x.com …).
def _problem(*kinds: str) -> str:
    return r"/problems/(?:{})\b".format("|".join(re.escape(kind) for kind in kinds))


_DB_DRIVERS = r"\b(?:sqlalchemy|psycopg2?|pymysql|sqlite3|MySQLdb|mysql\.connector|mariadb|asyncpg)\.\w"

RULES: tuple[Rule, ...] = (
    # --- the box itself ------------------------------------------------------------------
    _rule("disk-full", F.DISK, r"No space left on device|\berrno=E(?:NOSPC|DQUOT)\b|\[Errno (?:28|122)\]"
          r"|database or disk is full|Disk quota exceeded|SQLITE_FULL|could not extend file"
          r"|The table '[^']*' is full"),
    _rule("db-driver", F.DATABASE, _DB_DRIVERS),
    _rule("db-text", F.DATABASE,
          r"sqlalche\.me/e/|\b(?:Operational|Interface|Integrity|Programming|Database)Error\b"
          r"|could not connect to server|connection to server (?:at|on) .{0,120}failed"
          r"|server closed the connection unexpectedly|Can't connect to (?:local )?MySQL server"
          r"|MySQL server has gone away|Lost connection to (?:MySQL )?server|database is locked"
          r"|unable to open database file|no such table|database \S+ does not exist"
          r"|Unknown database|password authentication failed|Access denied for user"
          r"|too many connections|remaining connection slots|QueuePool limit"
          r"|the database system is (?:starting up|shutting down|in recovery mode)"
          r"|deadlock detected|Deadlock found"),
    # --- X: caps and credits before the generic 429 -----------------------------------------
    _rule("x-usage-capped", F.USAGE_CAP, _problem("usage-capped", "usage-cap-exceeded")
          + r"|UsageCapExceeded|Usage cap exceeded|monthly (?:product |usage )?cap"),
    _rule("x-credits", F.USAGE_CAP, _problem("credits", "credits-depleted")
          + r"|CreditsDepleted|credits depleted|does not have any credits|Payment Required"),
    _rule("http-402", F.USAGE_CAP, statuses=(402,)),
    _rule("x-daily-status-limit", F.RATE_LIMIT, _codes(185, 344) + r"|over daily status update limit"
          r"|reached your daily limit"),
    _rule("x-duplicate", F.DUPLICATE, _codes(187) + r"|duplicate content|Status is a duplicate"
          r"|\bduplicate (?:tweet|post|status)\b|DuplicateTweet|DuplicatePost"),
    # --- X: a human must act (no retry) -------------------------------------------------------
    _rule("x-suspended", F.PERMISSION, _codes(64) + "|" + _problem("user-suspended")
          + r"|account is suspended|user used for authentication is suspended"),
    _rule("x-locked", F.PERMISSION, _codes(326) + r"|account is temporarily locked"),
    _rule("x-automated", F.PERMISSION, _codes(226) + r"|looks like it might be automated"),
    _rule("x-access-level", F.PERMISSION, _codes(220, 261, 453)
          + "|" + _problem("client-forbidden", "oauth1-permissions", "unsupported-authentication",
                           "not-authorized-for-resource", "disallowed-resource")
          + r"|client-not-enrolled|Client Forbidden|Unsupported Authentication"
          r"|oauth1 app permissions|access to a subset of (?:X|Twitter) API"
          r"|cannot perform write actions|Read-only application cannot POST"
          r"|attached to a Project|Authenticating with \w+ is forbidden"
          r"|not permitted to perform this action|credentials do not allow access"),
    # --- X: credentials --------------------------------------------------------------------------
    _rule("x-auth-codes", F.AUTH, _codes(32, 89, 135, 215, 99)
          + r"|Could not authenticate you|Invalid or expired token|Bad authentication data"
          r"|Timestamp out of bounds|invalid_grant|Value passed for the token was invalid"
          r"|unauthorized_client|Missing valid authorization header|invalid_client"
          # tweepy auth.py when TWITTER_API_KEY / _SECRET is unset (tweepy #1972)
          r"|Consumer (?:key|secret) must be string or bytes"),
    # --- X: the request itself -------------------------------------------------------------------
    _rule("x-too-long", F.INVALID_REQUEST, _codes(186, 170, 324, 44)
          + r"|text is too long|needs to be a bit shorter|Tweet text is too long"
          + "|" + _problem("invalid-request") + r"|Invalid Request|request was invalid"),
    _rule("x-not-found", F.NOT_FOUND, _codes(34, 144, 50)
          + "|" + _problem("resource-not-found") + r"|page does not exist|No status found"),
    _rule("x-rate-limit", F.RATE_LIMIT, _codes(88) + "|" + _problem("rate-limit-exceeded")
          # "Rate limit reached. Sleeping for: N" is tweepy.API (v1.1) with wait_on_rate_limit
          + r"|Rate limit (?:exceeded|reached)|Too Many Requests|\bTooManyRequests\b"
          r"|too many 429 error responses"),
    _rule("x-server", F.SERVER_ERROR, _codes(130, 131) + "|" + _problem("internal-error")
          + r"|Over capacity|\bInternal error\b|\bTwitterServerError\b|too many 5\d\d error responses"
          # tweepy, HTTP 200 with an empty/garbled body (tweepy #2152): the POST reached X and
          # X answered badly. Server-side, and ambiguous: the tweet may exist, so a retry must
          # go through the duplicate check — exactly what AMBIGUOUS classes get.
          r"|Failed to parse JSON payload"),
    # --- the network, timeouts before generic connection errors -------------------------------
    _rule("net-timeout", F.TIMEOUT,
          r"\b(?:Read|Connect|Write|Pool)Timeout(?:Error)?\b|\bTimeoutError\b|\bsocket\.timeout\b"
          r"|timed out|\berrno=ETIMEDOUT\b|\bETIMEDOUT\b|ESOCKETTIMEDOUT|timeout of \d+ ?ms exceeded"
          r"|deadline exceeded"
          # WSAETIMEDOUT, the Windows ETIMEDOUT: a connect that got no answer in time
          r"|\bWinError 10060\b"),
    _rule("net-dns", F.NETWORK, r"NameResolutionError|Name or service not known|name resolution"
          r"|nodename nor servname|getaddrinfo (?:failed|ENOTFOUND|EAI_AGAIN)|\bENOTFOUND\b"
          r"|\bEAI_AGAIN\b|No address associated with hostname|Could not resolve host"),
    _rule("net-connection", F.NETWORK,
          r"Max retries exceeded|Failed to establish a new connection|Connection refused"
          r"|Connection reset|Connection aborted|RemoteDisconnected|Remote end closed connection"
          r"|\bConnection(?:Aborted|Reset|Refused)Error\b|connection was aborted|forcibly closed"
          r"|\bWinError 100(?:53|54|61)\b|BadStatusLine"
          r"|\bECONNRESET\b|\bECONNREFUSED\b|\bEPIPE\b|\berrno=E(?:CONNRESET|CONNREFUSED|CONNABORTED"
          r"|NETUNREACH|HOSTUNREACH|PIPE)\b|socket hang up|Network is unreachable|No route to host"
          r"|Broken pipe|\bSSL(?:EOF)?Error\b|SSL: |EOF occurred in violation of protocol"
          r"|CERTIFICATE_VERIFY_FAILED|\bProtocolError\b|ChunkedEncodingError|IncompleteRead"
          r"|\bProxyError\b|\bConnectionError\b|NewConnectionError|network error|fetch failed"),
    # --- a bare HTTP status: the last resort for X answers ------------------------------------
    _rule("http-429", F.RATE_LIMIT, statuses=(429,)),
    _rule("http-401", F.AUTH, statuses=(401,)),
    _rule("http-403", F.PERMISSION, statuses=(403,)),
    _rule("http-404", F.NOT_FOUND, statuses=(404, 410)),
    _rule("http-400", F.INVALID_REQUEST, statuses=(400, 413, 414, 422)),
    _rule("http-408", F.TIMEOUT, statuses=(408,)),
    _rule("http-5xx", F.SERVER_ERROR, statuses=tuple(range(500, 600))),
)

# Where a bare string carries an HTTP status: tweepy's "429 Too Many Requests", JSON
# `"status": 429`, node twitter-api-v2's "Request failed with code 429", "HTTP 503" …
ERROR_PHRASES: tuple[str, ...] = tuple(sorted({status.phrase for status in HTTPStatus if status >= 400}
                                             | {"Gateway Time-out", "Request Timeout"},
                                             key=lambda phrase: len(re.escape(phrase)), reverse=True))
_REASONS = "|".join(re.escape(phrase) for phrase in ERROR_PHRASES)
STATUS_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(rf"\b([45]\d\d) (?:{_REASONS}|Client Error|Server Error)\b", re.I),  # + requests
    re.compile(rf"\b([45]\d\d) \((?:{_REASONS})\)", re.I),  # twython: "returned a 403 (Forbidden)"
    re.compile(r"[\"']?status(?:_code|Code)?[\"']?\s*[:=]\s*([45]\d\d)\b", re.I),
    re.compile(r"\b(?:status code|code|HTTP(?:/\d(?:\.\d)?)?|HTTP Error|error)\s*[:=]?\s*([45]\d\d)\b",
               re.I),
)

# Where a string carries a v1.1 error code: JSON, tweepy 4 ("89 - Invalid…"), tweepy 3 repr.
CODE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"[\"']code[\"']\s*:\s*(\d{1,3})\b"),
    re.compile(r"(?:^|\n|\\n|: )(\d{2,3}) - [A-Z]"),
    # node clients print `code: 187`, others `code - 187`, `(Twitter code 220)`; a bare
    # "exit code 64" or "returned code 88" is a process, not X
    re.compile(r"\bcode\s*[:=-]\s*(\d{2,3})\b(?![\d.])|\b(?:twitter|api|x|error) code\s+(\d{2,3})\b",
               re.I),
)

# Log lines worth classifying: level words, exception names (`…Error`, `…Exception`),
# tracebacks, failures (ERROR_WORDS, searched in the lower-cased line), HTTP error statuses.
# They run on every log line, so they stay cheap scans (≈ 1 µs a line): literal alternations,
# no re.IGNORECASE, no leading `\b` or `\w*`.
ERROR_WORD_STEMS = ("error", "critical", "fatal", "severe", "emerg", "alert", "panic", "exception",
                    "exceeded", "depleted", "traceback", "fail")  # every ERROR_WORDS match starts so
ERROR_WORDS = re.compile(
    r"(?:error|critical|fatal|severe|emerg|alert|panic|exception|exceeded|depleted|traceback"
    r"|fail(?:ed|ure|s)?)\b"
)
# A line whose own level says it is not an error (`INFO … 0 posts failed`): only an HTTP error
# status still makes it worth classifying. Searched in the first 80 characters.
QUIET_LEVEL = re.compile(r"\b(?:DEBUG|INFO|NOTICE|TRACE)\b"
                         r"|\blevel(?:name)?[\"']?\s*[:=]\s*[\"']?(?:debug|info|notice|trace)\b")
ERROR_STATUS = re.compile(rf"[45]\d\d (?:{_REASONS})\b")
