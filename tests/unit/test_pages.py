"""The HTML pages: structure, landmarks, escaping of hostile values, lang/dir."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from lxml import html as lxml_html

from certflow.pages import (
    access_code_page,
    learner_page,
    match_access_code,
    normalise_code,
    not_found_page,
    verification_page,
    wallet_offer_page,
)

CERT_ID = "0b6f5a2e-1111-5222-8333-444455556666"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def record(name="Asha Verma", **changes):
    base = {
        "id": CERT_ID, "accessCode": "P4L3Y9", "verifyUrl": f"https://certs.example.org/certs/{CERT_ID}",
        "recipient": {"id": "user-1", "name": name}, "course": {"id": "do_1", "name": "Python basics"},
        "batchId": "b1", "templateId": "t1", "certificateName": "Merit certificate",
        "issuedDate": "2026-03-14", "issuedOn": "2026-03-14T10:00:00Z", "oldId": "", "userId": "user-1",
        "certificate": {
            "name": "Merit certificate", "validFrom": "2026-03-14T10:00:00Z",
            "validUntil": "2028-03-14T00:00:00Z",
            "issuer": {"id": "did:key:z6Mk", "name": "Sunbird Academy", "url": "https://academy.example.org"},
        },
    }
    base.update(changes)
    return base


VERIFIED = {"verified": True, "checks": [
    {"check": c, "ok": True, "reason": ""} for c in ("format", "signature", "issuer", "validFrom", "expiry", "status")
]}


def parse(page: str):
    assert page.startswith("<!DOCTYPE html>")
    doc = lxml_html.fromstring(page)
    assert doc.get("lang") == "en"
    for landmark in ("header", "main", "footer"):
        assert len(doc.findall(f".//{landmark}")) == 1
    assert len(doc.findall(".//h1")) == 1
    assert not doc.findall(".//script")
    assert all(img.get("alt") for img in doc.iter("img"))
    assert doc.find(".//meta[@name='viewport']") is not None
    return doc


def test_valid_certificate_page():
    doc = parse(verification_page(record(), VERIFIED, issuer_logo="data:image/png;base64,AAAA",
                                  wallet_url="https://wallet.example.org/x", wallet_qr="data:image/png;base64,QQ"))
    assert doc.find(".//h1").text_content() == "Merit certificate"
    assert doc.find(".//p[@role='status']").text_content() == "Valid certificate"
    picture = doc.find(".//figure[@class='picture']/img")
    assert picture.get("src") == f"{CERT_ID}.png" and "Asha Verma" in picture.get("alt")
    header = doc.find(".//header")
    assert header.find(".//img").get("alt") == "Sunbird Academy logo"
    assert header.find(".//a").get("href") == "https://academy.example.org"
    checks = [li.text_content() for li in doc.findall(".//ul[@class='checks']/li")]
    assert len(checks) == 6 and all("Passed" in c for c in checks)
    assert any("signature" in c for c in checks) and any("revoked" in c for c in checks)
    details = {dt.text_content(): dt.getnext().text_content() for dt in doc.iter("dt")}
    assert details["Valid until"] == "2028-03-14" and details["Awarded to"] == "Asha Verma"
    hrefs = {a.text_content(): a.get("href") for a in doc.iter("a")}
    assert hrefs["Download PDF"] == f"{CERT_ID}.pdf" and hrefs["Download SVG"] == f"{CERT_ID}.svg"
    assert hrefs["Add to wallet"] == "https://wallet.example.org/x"
    linkedin = parse_qs(urlsplit(hrefs["Add to LinkedIn profile"]).query)
    assert linkedin["name"] == ["Merit certificate"] and linkedin["certId"] == [CERT_ID]
    assert linkedin["issueYear"] == ["2026"] and linkedin["issueMonth"] == ["3"]
    assert linkedin["expirationYear"] == ["2028"] and linkedin["organizationName"] == ["Sunbird Academy"]
    assert doc.find(".//figure[@class='qr']/img").get("alt")


def test_revoked_page():
    revocation = {"reason": "Issued in error", "revokedAt": "2026-04-02T09:00:00+00:00", "replacedBy": ""}
    result = {"verified": False, "checks": [{"check": "status", "ok": False, "reason": "revoked"}]}
    doc = parse(verification_page(record(), result, revocation=revocation))
    assert doc.find(".//p[@role='status']").text_content() == "Revoked on 2026-04-02"
    details = {dt.text_content(): dt.getnext().text_content() for dt in doc.iter("dt")}
    assert details["Revoked on"] == "2026-04-02" and details["Reason"] == "Issued in error"
    texts = [a.text_content() for a in doc.iter("a")]
    assert "Add to LinkedIn profile" not in texts and "Download PDF (marked REVOKED)" in texts
    assert "Failed" in doc.find(".//ul[@class='checks']").text_content()


def test_expired_page():
    result = {"verified": False, "checks": [{"check": "expiry", "ok": False, "reason": "expired on 2028-03-14"}]}
    doc = parse(verification_page(record(), result))
    assert doc.find(".//p[@role='status']").text_content() == "Expired on 2028-03-14"


def test_hostile_values_are_escaped_everywhere():
    hostile = record(name=HOSTILE, certificateName=HOSTILE, course={"id": "c", "name": HOSTILE})
    hostile["certificate"]["issuer"] = {"name": HOSTILE, "url": "javascript:alert(1)", "image": "https://evil/x.png"}
    page = verification_page(hostile, VERIFIED, issuer_logo="javascript:alert(1)")
    doc = parse(page)
    assert "<script>" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert not [el for el in doc.iter() if any(k.startswith("on") for k in el.attrib)]
    assert not [a for a in doc.iter("a") if (a.get("href") or "").startswith("javascript")]
    assert doc.find(".//header//img") is None  # neither a remote nor a javascript: logo
    assert doc.find(".//h1").text_content() == HOSTILE
    learner = parse(learner_page(HOSTILE, [hostile]))
    assert learner.find(".//h1").text_content() == f"Certificates of {HOSTILE}"
    assert not learner.findall(".//script")


def test_urdu_tamil_telugu_values_get_dir_and_lang():
    for name, lang, direction in (("عائشہ صدیقی", "ur", "rtl"), ("அருண் குமார்", "ta", "ltr"),
                                  ("శ్రీనివాస్", "te", "ltr"), ("आशा वर्मा", "hi", "ltr")):
        doc = parse(verification_page(record(name=name), VERIFIED))
        shown = next(dd for dd in doc.iter("dd") if dd.text_content() == name)
        assert (shown.get("dir"), shown.get("lang")) == (direction, lang)
    doc = parse(verification_page(record(name="Aisha"), VERIFIED, recipient_lang="ur-PK"))
    assert next(dd for dd in doc.iter("dd") if dd.text_content() == "Aisha").get("lang") == "ur-PK"


def test_not_found_page():
    doc = parse(not_found_page("<b>nope</b>"))
    assert doc.find(".//h1").text_content() == "Certificate not found"
    assert "<b>nope</b>" in doc.find(".//code").text_content()
    assert doc.find(".//a").get("href") == "/verify"


def test_access_code_matching():
    first = record()
    second = record(id="9a9a9a9a-0000-5000-8000-000000000000", recipient={"id": "u2", "name": "Ravi"})
    candidates = [first, second]
    assert match_access_code(candidates, "p4l-3y9", " asha  VERMA ") == [first]
    assert match_access_code(candidates, "P4L3Y9", "9A9A9A9A") == [second]
    assert match_access_code(candidates, "P4L3Y9", CERT_ID) == [first]
    assert match_access_code(candidates, "P4L3Y9", "0b6f5a") == []  # too short to identify
    assert match_access_code(candidates, "P4L3Y8", "Asha Verma") == []
    assert match_access_code(candidates, "", "Asha Verma") == []
    assert match_access_code(candidates, "P4L3Y9", "") == []
    assert normalise_code(" p4 l3-y9 ") == "P4L3Y9"


def test_access_code_form_and_results():
    doc = parse(access_code_page())
    form = doc.find(".//form")
    assert form.get("method") == "get"
    labels = {label.get("for") for label in form.iter("label")}
    assert labels == {"code", "who"} and {i.get("id") for i in form.iter("input")} == labels
    found = parse(access_code_page(code="P4L3Y9", name_or_short_id='"><script>', matches=[record()]))
    assert found.find(".//input[@id='who']").get("value") == '"><script>'
    assert found.find(".//ul[@class='cards']//a").get("href") == f"certs/{CERT_ID}"
    none = parse(access_code_page(code="P4L3Y9", name_or_short_id="x", matches=[]))
    assert "No certificate matches" in none.find(".//p[@role='status']").text_content()


def test_learner_page():
    revoked = record(id="9a9a9a9a-0000-5000-8000-000000000000", verifyUrl="https://c/certs/9a9a")
    doc = parse(learner_page("आशा वर्मा", [record(), revoked],
                             revocations={revoked["id"]: {"revokedAt": "2026-05-01T00:00:00Z"}},
                             wallet_url_for=lambda r: f"https://wallet.example.org/{r['id']}"))
    h1_name = doc.find(".//h1/span")
    assert (h1_name.get("lang"), h1_name.get("dir")) == ("hi", "ltr")
    cards = doc.findall(".//ul[@class='cards']/li")
    assert len(cards) == 2
    first = {a.text_content(): a.get("href") for a in cards[0].iter("a")}
    assert first["Download PDF"] == f"https://certs.example.org/certs/{CERT_ID}.pdf"
    assert "Add to LinkedIn profile" in first
    # Making a one-time claim link is a POST (a form button), never a plain link.
    (wallet,) = cards[0].iter("form")
    assert wallet.get("method") == "post" and wallet.get("action").endswith(CERT_ID)
    assert wallet.find("button").text_content() == "Add to wallet"
    second = {a.text_content() for a in cards[1].iter("a")}
    assert "Add to LinkedIn profile" not in second and not list(cards[1].iter("form"))
    assert "Revoked on 2026-05-01" in cards[1].text_content()


def test_wallet_offer_page_gives_the_deep_link_its_qr_code_and_the_exchange_url():
    offer = {"deepLink": "https://lcw.app/request?request=%7B%7D", "exchangeUrl": "https://c/exchanges/x.y",
             "expires": "2026-12-06T21:55:00+00:00"}
    doc = parse(wallet_offer_page(HOSTILE, offer, "data:image/png;base64,AAAA"))

    assert doc.find(".//h1").text_content() == "Add to your wallet"
    (link,) = [a for a in doc.iter("a") if a.text_content() == "Open in my wallet"]
    assert link.get("href") == offer["deepLink"]
    (qr,) = doc.iter("img")
    assert qr.get("src").startswith("data:image/png") and "QR code" in qr.get("alt")
    assert "https://c/exchanges/x.y" in doc.text_content() and "2026-12-06 21:55" in doc.text_content()
    assert not list(doc.iter("script"))
