"""Acting on incidents from the page itself: signed acknowledge links, Twilio SMS replies and the
voice keypad; and the "send test notification" button on contact methods.

Links carry a signed, expiring token naming the incidents and the person paged. GET only shows
the incident with Acknowledge / Resolve buttons (mail scanners follow links; they must not
acknowledge); the POST acts. Twilio's webhooks are verified with X-Twilio-Signature (the
access rule in openduty.access).
"""

import re
from xml.sax.saxutils import escape

from flask import Blueprint, abort, flash, make_response, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from openduty import escalation
from openduty import incidents as domain
from openduty.access import may_manage
from openduty.ack_links import LinkError, load_token
from openduty.extensions import csrf, db
from openduty.models import ContactMethod, Incident, User
from openduty.views import is_htmx, render, times

bp = Blueprint("ack", __name__)


def _invalid(error: LinkError):
    return render("ack/invalid.html", status=error.status, error=error)


@bp.get("/ack/<token>")
def show(token: str):
    try:
        incidents, user = load_token(token)
    except LinkError as error:
        return _invalid(error)
    times.show_times_for(user)
    return render("ack/show.html", incidents=incidents, user=user, token=token)


@bp.post("/ack/<token>")
def act(token: str):
    try:
        incidents, user = load_token(token)
    except LinkError as error:
        return _invalid(error)
    action = request.form.get("action")
    if action not in ("acknowledge", "resolve"):
        flash("Choose Acknowledge or Resolve.", "error")
        times.show_times_for(user)
        return render("ack/show.html", status=400, incidents=incidents, user=user, token=token)
    domain.lock([i.id for i in incidents])
    done = [incident for incident in incidents if domain.act(incident, action, user, channel="link")]
    db.session.commit()
    verb = "Acknowledged" if action == "acknowledge" else "Resolved"
    if done:
        flash(f"{verb}: " + ", ".join(f"#{i.number}" for i in done) + ".", "success")
    else:
        flash(f"Nothing to do: already {'acknowledged or resolved' if action == 'acknowledge' else 'resolved'}.")
    return redirect(url_for("ack.show", token=token), code=303)


# --- Twilio webhooks ----------------------------------------------------------------------------


def _twiml(body: str):
    response = make_response(f'<?xml version="1.0" encoding="UTF-8"?>{body}')
    response.mimetype = "text/xml"
    return response


_SMS_COMMAND = re.compile(r"^\s*(ack|acknowledge|res|resolve)\b[\s#:]*((?:\d+[\s,#]*)+)$", re.IGNORECASE)


def _reply(text: str):
    return _twiml(f"<Response><Message>{escape(text)}</Message></Response>")


@bp.post("/twilio/sms")
@csrf.exempt
def twilio_sms():
    """Inbound SMS: 'ack 12' or 'res 12' (several numbers allowed) from a paged person's phone."""
    sender = request.form.get("From", "")
    users = db.session.scalars(
        select(User)
        .join(ContactMethod)
        .where(ContactMethod.kind.in_(("sms", "voice")), ContactMethod.address == sender, User.active)
        .distinct()
    ).all()
    if len(users) != 1:
        return _reply("Openduty does not know this number." if not users else "This number belongs to several users.")
    user = users[0]
    match = _SMS_COMMAND.match(request.form.get("Body", ""))
    if not match:
        return _reply("Reply 'ack 12' to acknowledge incident #12, or 'res 12' to resolve it.")
    action = "acknowledge" if match.group(1).lower().startswith("ack") else "resolve"
    numbers = list(dict.fromkeys(int(n) for n in re.findall(r"\d+", match.group(2))))
    found = {i.number: i for i in db.session.scalars(select(Incident).where(Incident.number.in_(numbers)))}
    domain.lock([i.id for i in found.values()])
    answers = []
    for number in numbers:
        incident = found.get(number)
        if incident is None:
            answers.append(f"#{number}: no such incident")
        elif domain.act(incident, action, user, channel="sms"):
            answers.append(f"#{number}: {'acknowledged' if action == 'acknowledge' else 'resolved'}")
        else:
            answers.append(f"#{number}: already {incident.status}")
    db.session.commit()
    return _reply("; ".join(answers) + ".")


@bp.post("/twilio/voice/<token>")
@csrf.exempt
def twilio_voice(token: str):
    """The voice call's keypad: 1 acknowledges the incidents the call was about."""
    try:
        incidents, user = load_token(token)
    except LinkError:
        return _twiml('<Response><Say voice="alice">This call can no longer acknowledge. Goodbye.</Say></Response>')
    if request.form.get("Digits") != "1":
        return _twiml('<Response><Say voice="alice">Not acknowledged. Goodbye.</Say></Response>')
    domain.lock([i.id for i in incidents])
    done = [i for i in incidents if domain.acknowledge(i, by=user, channel="voice")]
    db.session.commit()
    said = "Acknowledged. Goodbye." if done else "The incident was already acknowledged or resolved. Goodbye."
    return _twiml(f'<Response><Say voice="alice">{said}</Say></Response>')


# --- Send a test notification -------------------------------------------------------------------


@bp.post("/contact-methods/<int:method_id>/test")
def test_contact_method(method_id: int):
    """Queue a test notification to one contact method (its owner or an admin)."""
    method = db.session.get(ContactMethod, method_id)
    if method is None:
        abort(404)
    if not may_manage(current_user, method.user_id):
        abort(403)
    try:
        escalation.send_test(method, by=current_user)
    except escalation.TestLimitReached as exc:
        if not is_htmx():
            abort(429, str(exc))
        response = render("notifications/_test_sent.html", text=str(exc), status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    db.session.commit()
    text = f"Test notification sent to {method.kind_label} {method.address}; it should arrive within a minute."
    if is_htmx():
        return render("notifications/_test_sent.html", text=text)
    flash(text, "success")
    # Back to the page the button was on: the owner's profile, or (an admin's test) the user's page.
    own = method.user_id == current_user.id
    return redirect(url_for("users.profile") if own else url_for("users.show", user_id=method.user_id), code=303)
