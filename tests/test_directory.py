"""Directory logins and sync against a real OpenLDAP server (tests/ldap_server.py)."""

import ldap3
import pytest
from sqlalchemy import func, select

from openduty import directory, jobs
from openduty.extensions import db
from openduty.models import ApiToken, AuditEntry, Team, TeamMember, User
from tests import factories, ldap_server
from tests.ldap_server import ADMINS, person_dn
from tests.processes import self_signed_certificate


def _users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


@pytest.mark.parametrize("login", ["alice", "alice@example.org", " ALICE@example.org "])
def test_a_person_is_found_by_username_or_email(ldap_on, login):
    person = directory.authenticate(login, "alice-pass")
    assert person.dn == person_dn("alice")
    assert (person.email, person.name, person.is_admin) == ("alice@example.org", "Alice Liddell", True)
    assert directory.authenticate("bob", "bob-pass").is_admin is False


@pytest.mark.parametrize(
    "login, password",
    [
        ("alice", "wrong"),
        ("alice", ""),  # an empty password would be an anonymous bind, which LDAP lets through
        ("nobody", "x"),
        ("*", "alice-pass"),
        ("*)(uid=*", "alice-pass"),  # filter injection: searched for as text
        ("alice)(|(uid=*", "alice-pass"),
        ("", "alice-pass"),
    ],
)
def test_wrong_logins_are_refused_with_one_message(ldap_on, login, password):
    with pytest.raises(directory.LoginRefused, match="Wrong username or password."):
        directory.authenticate(login, password)


def test_an_entry_without_email_is_refused_saying_why(ldap_on):
    with pytest.raises(directory.LoginRefused, match="no email address"):
        directory.authenticate("carol", "carol-pass")


def test_a_stopped_directory_is_down_not_wrong(ldap_on, slapd):
    slapd.stop()
    with pytest.raises(directory.DirectoryDown, match="not answering"):
        directory.authenticate("alice", "alice-pass")


def test_a_refused_service_account_is_down(app, ldap_on):
    app.config["LDAP_BIND_PASSWORD"] = "not-the-password"
    with pytest.raises(directory.DirectoryDown, match="service account"):
        directory.authenticate("alice", "alice-pass")


def test_first_login_creates_the_user_with_an_email_contact_method_and_later_ones_refresh_it(ldap_on):
    user = directory.mirror(directory.authenticate("alice", "alice-pass"))
    db.session.commit()
    assert (user.email, user.name, user.is_admin, user.auth_source) == (
        "alice@example.org",
        "Alice Liddell",
        True,
        "ldap",
    )
    assert user.password_hash is None
    assert [(m.kind, m.address) for m in user.contact_methods] == [("email", "alice@example.org")]

    with ldap_on.admin() as conn:
        conn.modify(person_dn("alice"), {"cn": [("MODIFY_REPLACE", ["Alice Kingsleigh"])]})
        conn.modify(ADMINS, {"member": [("MODIFY_DELETE", [person_dn("alice")])]})
    try:
        again = directory.mirror(directory.authenticate("alice", "alice-pass"))
        db.session.commit()
        assert again.id == user.id and _users() == 1
        assert (again.name, again.is_admin) == ("Alice Kingsleigh", False)
    finally:
        with ldap_on.admin() as conn:
            conn.modify(person_dn("alice"), {"cn": [("MODIFY_REPLACE", ["Alice Liddell"])]})
            conn.modify(ADMINS, {"member": [("MODIFY_ADD", [person_dn("alice")])]})


def test_a_local_account_with_a_password_is_never_taken_over(ldap_on):
    factories.make_user(email="bob@example.org", name="Local Bob")
    with pytest.raises(directory.LoginRefused, match="local account"):
        directory.mirror(directory.authenticate("bob", "bob-pass"))


def test_a_paged_only_local_user_becomes_the_directory_account(ldap_on):
    local = factories.make_user(email="bob@example.org", name="Bob", password=None)
    user = directory.mirror(directory.authenticate("bob", "bob-pass"))
    assert user.id == local.id and user.auth_source == "ldap" and user.directory_dn == person_dn("bob")


def test_sync_refreshes_and_deactivates_who_left(ldap_on):
    alice = directory.mirror(directory.authenticate("alice", "alice-pass"))
    dave = directory.mirror(directory.authenticate("dave", "dave-pass"))
    _, token = ApiToken.issue(dave, "cron")
    dave_generation = dave.session_generation
    db.session.commit()
    with ldap_on.admin() as conn:
        conn.modify_dn(person_dn("dave"), "uid=dave-gone")
    try:
        counts = directory.sync()
        db.session.commit()
    finally:
        with ldap_on.admin() as conn:
            conn.modify_dn(f"uid=dave-gone,{person_dn('dave').split(',', 1)[1]}", "uid=dave")
    assert counts == {"refreshed": 0, "unchanged": 1, "deactivated": 1, "failed": 0}
    assert alice.active and not dave.active
    assert dave.session_generation > dave_generation
    assert ApiToken.authenticate(token) is None
    # The audit log says who did it: the sync, for the user and the token that ended with them.
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.actor == "ldap-sync")).all()
    assert {(e.object_type, e.action) for e in entries} == {("user", "changed"), ("api token", "deleted")}
    [deactivated] = [e for e in entries if e.object_type == "user"]
    assert deactivated.object_id == dave.id and deactivated.changes["active"] == [True, False]


def test_sync_with_the_directory_down_changes_nothing(ldap_on, slapd):
    user = directory.mirror(directory.authenticate("alice", "alice-pass"))
    db.session.commit()
    slapd.stop()
    with pytest.raises(directory.DirectoryDown):
        directory.sync()
    db.session.rollback()
    assert db.session.get(User, user.id).active


def test_ldap_sync_command_reports_counts(app, ldap_on):
    directory.mirror(directory.authenticate("alice", "alice-pass"))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["openduty", "ldap-sync"])
    assert result.exit_code == 0, result.output
    assert "Directory sync: 0 refreshed, 1 unchanged, 0 deactivated" in result.output


def test_ldap_sync_command_with_the_directory_down_fails_and_changes_nothing(app, ldap_on, slapd):
    user = directory.mirror(directory.authenticate("alice", "alice-pass"))
    db.session.commit()
    slapd.stop()
    result = app.test_cli_runner().invoke(args=["openduty", "ldap-sync"])
    assert result.exit_code != 0
    assert "not answering" in result.output and "Nobody was changed" in result.output
    assert db.session.get(User, user.id).active


def test_ldap_sync_command_without_a_directory_says_what_to_set(app):
    result = app.test_cli_runner().invoke(args=["openduty", "ldap-sync"])
    assert result.exit_code != 0 and "LDAP_URL" in result.output


def test_the_periodic_sync_deactivates_who_left(app, ldap_on):
    dave = directory.mirror(directory.authenticate("dave", "dave-pass"))
    db.session.commit()
    with ldap_on.admin() as conn:
        conn.modify_dn(person_dn("dave"), "uid=dave-gone")
    try:
        assert jobs.sync_directory()["deactivated"] == 1
    finally:
        with ldap_on.admin() as conn:
            conn.modify_dn(f"uid=dave-gone,{person_dn('dave').split(',', 1)[1]}", "uid=dave")
    db.session.expire_all()
    assert not db.session.get(User, dave.id).active


def test_the_periodic_sync_is_off_without_a_directory(app):
    assert jobs.sync_directory() == "directory sync off"


@pytest.mark.parametrize("how", ["ldaps", "starttls"])
def test_tls_to_the_directory_with_its_ca(app, ldap_on, how):
    if how == "ldaps":
        app.config.update(LDAP_URL=ldap_on.ldaps_url, LDAP_CA_FILE=ldap_on.ca_file)
    else:
        app.config.update(LDAP_START_TLS=True, LDAP_CA_FILE=ldap_on.ca_file)
    assert directory.authenticate("alice", "alice-pass").email == "alice@example.org"


@pytest.mark.parametrize("how", ["ldaps", "starttls"])
def test_an_untrusted_directory_certificate_is_refused(app, ldap_on, how, tmp_path):
    """Without the directory's CA the certificate is not trusted: no password is sent."""
    app.config.update(LDAP_CA_FILE=str(self_signed_certificate(tmp_path, "unrelated")[0]))
    if how == "ldaps":
        app.config["LDAP_URL"] = ldap_on.ldaps_url
    else:
        app.config["LDAP_START_TLS"] = True
    with pytest.raises(directory.DirectoryDown, match="certificate"):
        directory.authenticate("alice", "alice-pass")


def test_a_phone_number_in_the_directory_becomes_an_unused_sms_method(ldap_on):
    user = directory.mirror(directory.authenticate("dave", "dave-pass"))
    assert [(m.kind, m.address) for m in user.contact_methods] == [
        ("email", "dave@example.org"),
        ("sms", "+14155550123"),
    ]
    assert user.notification_rules == []


def test_team_groups_become_teams_and_sync_follows_the_directory(app, ldap_on):
    app.config.update(LDAP_GROUP_BASE=ldap_server.GROUPS, LDAP_TEAM_GROUPS="(cn=team-*)")
    local = Team(name="On-call guild", description="")  # a local team the directory never touches
    db.session.add(local)
    db.session.commit()
    alice = directory.mirror(directory.authenticate("alice", "alice-pass"))
    local.members.append(TeamMember(user=alice))
    db.session.commit()
    assert sorted(m.team.name for m in alice.memberships) == ["On-call guild", "team-databases"]
    databases = db.session.scalar(select(Team).where(Team.name == "team-databases"))
    assert databases.directory_dn == f"cn=team-databases,{ldap_server.GROUPS}"
    bob = directory.mirror(directory.authenticate("bob", "bob-pass"))
    db.session.commit()
    assert [m.team.name for m in bob.memberships] == ["team-web"]
    group = f"cn=team-databases,{ldap_server.GROUPS}"
    with ldap_on.admin() as conn:
        conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [person_dn("alice")])]})
        conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [person_dn("bob")])]})
    try:
        counts = directory.sync()
        db.session.commit()
    finally:
        with ldap_on.admin() as conn:
            conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [person_dn("alice")])]})
            conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [person_dn("bob")])]})
    db.session.expire_all()
    assert counts["refreshed"] == 2
    assert [m.team.name for m in db.session.get(User, alice.id).memberships] == ["On-call guild"]
    assert sorted(m.team.name for m in db.session.get(User, bob.id).memberships) == ["team-databases", "team-web"]
