"""Malformed and oversized request bodies to every form the portal takes: never a 500,
nothing written.

Every POST endpoint (the patient forms, the login, the change-password form, every admin
create and edit form, every workflow action and every custom page) gets:

* a body over the 1 MiB limit (``portal.web.limits``), once with its ``Content-Length`` and
  once streamed without one (chunked): 413 before anything is written;
* Hypothesis' malformed bodies: random bytes, broken percent-escapes and invalid UTF-8,
  thousands of fields, multipart without or with a wrong boundary, files where text is
  expected (also as the CSRF token), JSON, wrong or missing content types.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.patient_pages.routes import view_link
from portal.web.limits import MAX_BODY_BYTES
from tests.fuzz_targets import (  # noqa: F401
    CREATABLE,
    EDITABLE,
    FORM_PAGES,
    ROW_ACTIONS,
    admin,
    edit_target,
    world,
)
from tests.fuzzing import LOGIN_WRITES, Exchanger, forms_on, fuzz, url_junk
from views.permissions import may


@pytest.fixture
def targets(world) -> list[str]:  # noqa: F811 - the world fixture
    """Every POST endpoint the administrator may write, with the ids of the world's rows
    filled in (what the administrator may not write answers 403 before its body is read)."""
    return [
        f"/book/{world.sample['clinic_session']}", "/booking", f"{view_link(int(world.sample['appointment']))}/cancel",
        "/admin/login", "/admin/password",
        *(f"/admin/{i}/create" for i in CREATABLE if may("admin", i, "c")),
        *(f"/admin/{i}/edit/{edit_target(world, i)}" for i in EDITABLE if may("admin", i, "e")),
        *(f"/admin/{i}/action/{slug}" for i, slug in ROW_ACTIONS),
        *(f"/admin/{i}" + path.replace("{pk}", world.sample[i]) for i, path in FORM_PAGES),
    ]


def test_every_post_endpoint_refuses_a_body_over_the_limit(admin, engine, targets):  # noqa: F811
    too_big = b"a=" + b"x" * MAX_BODY_BYTES

    def chunks():
        sent = 0
        while sent <= MAX_BODY_BYTES:
            yield b"x" * 65536
            sent += 65536

    send = Exchanger(admin, engine)
    for url in targets:
        response = send("POST", url, content=too_big, what="declared oversized body",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413, (url, response.status_code)
        response = send("POST", url, content=chunks(), what="chunked oversized body",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413, (url, response.status_code)
    assert admin.get("/admin/").status_code == 200


BOUNDARY = "fuzzboundary"


def _multipart(parts: list[tuple[str, bytes, bool]]) -> bytes:
    out = b""
    for name, value, as_file in parts:
        disposition = f'form-data; name="{name}"' + ('; filename="x.csv"' if as_file else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


_names = st.sampled_from(["csrf_token", "pks", "reason", "full_name", "phone", "username", "password",
                          "submission", "name", "quantity", "counted_quantity", "medicine_id", "clinic_session_id",
                          "current_password", "new_password", "code", "x"])
_bytes = st.binary(max_size=200)
bodies = st.one_of(
    st.tuples(st.just("application/x-www-form-urlencoded"), _bytes),
    st.tuples(st.just("application/x-www-form-urlencoded"),
              st.sampled_from([b"%zz=%", b"a=%ff%fe%00", b"=&=&&==", b"csrf_token=%E0%A4%A", b"a" * 5000,
                               b"&".join(b"f%d=1" % i for i in range(3000)), b"a=1;b=2", b"\xff\xfe\x00"])),
    st.tuples(st.just(f"multipart/form-data; boundary={BOUNDARY}"),
              st.lists(st.tuples(_names, _bytes, st.booleans()), max_size=5).map(_multipart)),
    st.tuples(st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=",
                               "multipart/form-data; boundary=zz", f"multipart/form-data; boundary={BOUNDARY}"]),
              st.one_of(_bytes, st.just(b"--zz\r\n\r\n"), st.just(_multipart([("a", b"1", False)])[:-10]))),
    st.tuples(st.sampled_from(["application/json", "text/plain", "application/xml", "", "x/y; charset=klingon"]),
              st.one_of(_bytes, st.just(b'{"csrf_token": "x", "pks": [1]}'))),
    st.tuples(url_junk.filter(lambda v: v.isascii() and "\n" not in v and "\r" not in v), _bytes),
)


def with_tokens(tokens: list[str]) -> st.SearchStrategy[tuple[str, bytes]]:
    """Multipart bodies that carry a valid CSRF token (admin or patient) and files or text
    in the other fields, so they get past the CSRF check to the form's own reading."""
    fields = st.lists(st.tuples(_names.filter(lambda n: n != "csrf_token"), _bytes, st.booleans()), min_size=1,
                      max_size=4)
    return st.tuples(
        st.just(f"multipart/form-data; boundary={BOUNDARY}"),
        st.builds(lambda token, parts: _multipart([("csrf_token", token.encode(), False), *parts]),
                  st.sampled_from(tokens), fields),
    )


def test_malformed_bodies_are_refused_cleanly(admin, engine, targets):  # noqa: F811
    tokens = [forms_on(admin.get(page).text)[-1].fields["csrf_token"].value for page in ("/admin/password", "/booking")]

    send = Exchanger(admin, engine)

    @fuzz(50)
    @given(url=st.sampled_from(targets), body=st.one_of(bodies, with_tokens(tokens)))
    def run(url, body):
        content_type, content = body
        headers = {"Content-Type": content_type} if content_type else {}
        send("POST", url, content=content, headers=headers, may_write=True,
                 allowed=LOGIN_WRITES if url == "/admin/login" else None, what=f"malformed body ({content_type})")

    run()
    assert admin.get("/admin/").status_code == 200, "a malformed body ended the admin session"
