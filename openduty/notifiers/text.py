"""Event text made safe for the channels: one line, plain text, Slack mrkdwn, length limits.

Event text is whatever a monitoring tool sent: newlines (Alertmanager annotations often have
them), control characters, bidi marks, emoji, kilobytes. Each channel turns it into its wire format
with these helpers, so a summary can never make a header invalid, inject Slack mentions or break
TwiML/XMPP XML. Both `one_line` and `plain_text` return only characters XML 1.0 allows.
"""

import re
import unicodedata

ELLIPSIS = "…"

# Characters that end a line: CR, LF, VT, FF, the file/group/record separators, NEL and the
# Unicode line and paragraph separators.
_LINE_BREAKS = re.compile("\r\n|[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_SPACES = re.compile(r"\s+")


def _clean_char(ch: str) -> str:
    """Controls become a space; surrogates and the noncharacters XML forbids become U+FFFD."""
    category = unicodedata.category(ch)
    if category == "Cc":
        return " "
    if category == "Cs" or ch in "\ufffe\uffff":
        return "\ufffd"
    return ch


def _clean(text: str, keep: str) -> str:
    if text.isprintable() and not any(ch in "\ufffe\uffff" for ch in text):
        return text  # the common case: nothing to do
    return "".join(ch if ch in keep else _clean_char(ch) for ch in text)


def one_line(text: str | None, max_length: int | None = None) -> str:
    """Text on one line: every line break and control character becomes one space, runs of
    whitespace collapse, and the result is cut to `max_length` characters with an ellipsis."""
    flat = _SPACES.sub(" ", _clean(str(text or ""), keep="")).strip()
    return truncate(flat, max_length) if max_length is not None else flat


def plain_text(text: str | None, max_length: int | None = None) -> str:
    """Multi-line text: line breaks become \\n, tabs stay, other control characters become spaces."""
    lines = _LINE_BREAKS.sub("\n", str(text or ""))
    clean = _clean(lines, keep="\n\t")
    return truncate(clean, max_length) if max_length is not None else clean


def truncate(text: str, max_length: int) -> str:
    """At most `max_length` characters; a cut ends with an ellipsis (never inside a surrogate
    pair, which Python strings do not have, so any index is a character boundary)."""
    if len(text) <= max_length:
        return text
    if max_length <= 0:
        return ""
    return text[: max_length - 1].rstrip() + ELLIPSIS


def slack_escape(text: str, max_length: int | None = None) -> str:
    """Text for Slack's mrkdwn and `text` fields: &, < and > escaped, so event text cannot form
    control sequences (<!channel>, <@U123>, <http://...|link>); cut without splitting an entity."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if max_length is None or len(escaped) <= max_length:
        return escaped
    cut = escaped[: max_length - 1]
    cut = re.sub(r"&[a-z]{0,3}$", "", cut)  # a cut-off &amp; / &lt; / &gt;
    return cut.rstrip() + ELLIPSIS
