"""Users, their contact methods and notification rules."""

from flask import jsonify

from openduty.views.api import bp


@bp.get("/users")
def list_users():
    from openduty.extensions import db
    from openduty.models import User

    users = db.session.scalars(db.select(User).order_by(User.id)).all()
    return jsonify({"users": [{"id": u.id, "email": u.email, "name": u.name} for u in users]})
