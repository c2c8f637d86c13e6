//! Single Logout with pysaml2 as the real IdP, both directions, both
//! front-channel bindings: an IdP's LogoutRequest ends the sessions it names
//! and gets a signed LogoutResponse that pysaml2 verifies; an SP-initiated
//! LogoutRequest is verified and answered by pysaml2, and its answer is
//! accepted once. Every check a login has refuses a logout message too.

use serde_json::{json, Value};

use saml_jit_integration::*;

const SLO: &str = "https://app.test.example/slo";

/// A database where the demo IdP is trusted through pysaml2's own metadata
/// (so its SingleLogoutService endpoints come from the import), with the SP
/// key and SLO URL set.
fn setup(name: &str) -> Client {
    let mut c = fresh_database(name);
    trust_demo_idp(&mut c);
    install_sp_key(&mut c);
    c.execute("UPDATE saml_jit.service_provider SET slo_url = $1", &[&SLO])
        .unwrap();
    let metadata = pysaml2(idp_spec(&mut c, json!({"op": "metadata"})));
    c.query(
        "SELECT * FROM saml_jit_import_idp_metadata($1)",
        &[&metadata["metadata"].as_str().unwrap()],
    )
    .unwrap();
    let row = c
        .query_one(
            "SELECT slo_url_redirect, slo_url_post FROM saml_jit.identity_provider",
            &[],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, Option<String>>(0),
            row.get::<_, Option<String>>(1)
        ),
        (
            Some(format!("{IDP}slo/redirect")),
            Some(format!("{IDP}slo/post"))
        ),
        "the metadata import stores the IdP's SingleLogoutService endpoints"
    );
    c
}

/// The pysaml2 IdP spec, knowing this SP from its published metadata.
fn idp_spec(c: &mut Client, extra: Value) -> Value {
    let sp_metadata: String = c
        .query_one("SELECT saml_jit_sp_metadata()::text", &[])
        .unwrap()
        .get(0);
    let mut s = spec("ada");
    s["sp_metadata"] = json!(sp_metadata);
    s["slo"] = json!(SLO);
    s["sp_cert"] = json!(fixture("sp.crt"));
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// Logs `user` in; returns (session_id, session_index).
fn log_in(c: &mut Client, user: &str) -> (String, String) {
    let mut s = idp_spec(c, json!({}));
    s["user"] = json!(user);
    let l = login(c, &mint_one(s), None).expect("login");
    let index: Option<String> = c
        .query_one(
            "SELECT session_index FROM saml_jit.session WHERE id = $1::text::uuid",
            &[&l.session_id],
        )
        .unwrap()
        .get(0);
    (l.session_id, index.expect("pysaml2 sends a SessionIndex"))
}

fn active(c: &mut Client, session: &str) -> bool {
    c.query_one(
        "SELECT saml_jit_session_active($1::text::uuid)",
        &[&session],
    )
    .unwrap()
    .get(0)
}

#[derive(Debug)]
struct Logout {
    kind: String,
    user_id: Option<String>,
    ended_sessions: Vec<String>,
    status: String,
    reply_url: Option<String>,
    reply_post_url: Option<String>,
    reply_saml_response: Option<String>,
    relay_state: Option<String>,
}

/// saml_jit_logout; Err((sqlstate, message, detail)).
fn logout(
    c: &mut Client,
    message: Option<&str>,
    query: Option<&str>,
) -> Result<Logout, (String, String, String)> {
    c.query_one(
        "SELECT kind, user_id::text, ended_sessions::text[], status, reply_url, reply_post_url,
                reply_saml_response, relay_state
           FROM saml_jit_logout($1, $2)",
        &[&message, &query],
    )
    .map(|r| Logout {
        kind: r.get(0),
        user_id: r.get(1),
        ended_sessions: r.get(2),
        status: r.get(3),
        reply_url: r.get(4),
        reply_post_url: r.get(5),
        reply_saml_response: r.get(6),
        relay_state: r.get(7),
    })
    .map_err(|e| {
        let db = e.as_db_error().expect("a database error");
        (
            db.code().code().to_string(),
            db.message().to_string(),
            db.detail().unwrap_or_default().to_string(),
        )
    })
}

#[track_caller]
fn assert_refused(result: Result<Logout, (String, String, String)>, reason: &str) -> String {
    match result {
        Ok(l) => panic!("expected {reason}, but the logout message was accepted: {l:?}"),
        Err((state, message, detail)) => {
            assert_eq!(
                (state.as_str(), message.as_str()),
                (
                    "28000",
                    format!("SAML logout message rejected: {reason}").as_str()
                ),
                "{detail}"
            );
            assert!(!detail.is_empty());
            detail
        }
    }
}

fn query_of(url: &str) -> &str {
    url.split_once('?').expect("a query string").1
}

#[test]
fn idp_initiated_logout_over_redirect_ends_the_named_session() {
    let mut c = setup("it_slo_idp_redirect");
    let (first, first_index) = log_in(&mut c, "ada");
    let (second, _) = log_in(&mut c, "ada");
    let (other_user, _) = log_in(&mut c, "grace");
    let request = pysaml2(idp_spec(
        &mut c,
        json!({"op": "logout_request", "binding": "redirect", "session_indexes": [first_index],
               "relay_state": "back-to/portal"}),
    ));
    let url = request["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{SLO}?SAMLRequest=")), "{url}");
    let l = logout(&mut c, None, Some(query_of(url))).expect("a signed LogoutRequest");
    assert_eq!(l.kind, "logout_request");
    assert_eq!(l.ended_sessions, vec![first.clone()]);
    assert_eq!(l.status, "Success");
    assert_eq!(l.relay_state.as_deref(), Some("back-to/portal"));
    assert!(!active(&mut c, &first), "the named session ended");
    assert!(active(&mut c, &second), "another SessionIndex stays");
    assert!(active(&mut c, &other_user), "another user stays");
    let user: String = c
        .query_one(
            "SELECT user_id::text FROM saml_jit.session WHERE id = $1::text::uuid",
            &[&first],
        )
        .unwrap()
        .get(0);
    assert_eq!(l.user_id.as_deref(), Some(user.as_str()));
    let ended_by: String = c
        .query_one(
            "SELECT ended_by FROM saml_jit.session WHERE id = $1::text::uuid",
            &[&first],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended_by, "idp_logout");

    // The reply goes back by HTTP-Redirect, signed; pysaml2 verifies it.
    let reply = l.reply_url.expect("a reply URL");
    assert!(
        reply.starts_with(&format!("{IDP}slo/redirect?SAMLResponse=")),
        "{reply}"
    );
    assert!(
        reply.contains("&RelayState=back-to%2Fportal&SigAlg="),
        "{reply}"
    );
    let checked = pysaml2(idp_spec(
        &mut c,
        json!({"op": "check_logout_response", "url": reply}),
    ));
    assert_eq!(checked["in_response_to"], request["id"]);
    assert_eq!(
        checked["status"],
        "urn:oasis:names:tc:SAML:2.0:status:Success"
    );
    assert_eq!(checked["issuer"], SP);

    // Audited, and accepted once.
    let audited: i64 = c
        .query_one(
            "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'logout'
                AND assertion_id = $1 AND detail ->> 'kind' = 'logout_request'
                AND detail -> 'ended_sessions' = jsonb_build_array($2::text)",
            &[&request["id"].as_str().unwrap(), &first],
        )
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    assert_refused(logout(&mut c, None, Some(query_of(url))), "replay");
}

#[test]
fn idp_initiated_logout_over_post_without_session_index_ends_all_of_the_users_sessions() {
    let mut c = setup("it_slo_idp_post");
    let (first, _) = log_in(&mut c, "ada");
    let (second, _) = log_in(&mut c, "ada");
    let (other_user, _) = log_in(&mut c, "grace");
    let request = pysaml2(idp_spec(
        &mut c,
        json!({"op": "logout_request", "binding": "post"}),
    ));
    let value = request["value"].as_str().unwrap();
    let l = logout(&mut c, Some(value), None).expect("a signed LogoutRequest");
    let mut ended = l.ended_sessions.clone();
    ended.sort();
    let mut want = vec![first.clone(), second.clone()];
    want.sort();
    assert_eq!(ended, want);
    assert!(!active(&mut c, &first) && !active(&mut c, &second));
    assert!(active(&mut c, &other_user));
    assert_eq!(l.reply_url, None);
    assert_eq!(
        l.reply_post_url.as_deref(),
        Some(format!("{IDP}slo/post").as_str())
    );
    let checked = pysaml2(idp_spec(
        &mut c,
        json!({"op": "check_logout_response", "value": l.reply_saml_response.unwrap()}),
    ));
    assert_eq!(checked["in_response_to"], request["id"]);
    assert_eq!(checked["signed"], true);
    assert_refused(logout(&mut c, Some(value), None), "replay");
}

#[test]
fn sp_initiated_logout_is_verified_and_answered_by_the_idp_over_both_bindings() {
    let mut c = setup("it_slo_sp");
    let (session, index) = log_in(&mut c, "ada");
    let row = c
        .query_one(
            "SELECT request_id, redirect_url, post_url, saml_request
               FROM saml_jit_logout_request($1::text::uuid, 'after/logout')",
            &[&session],
        )
        .unwrap();
    let request_id: String = row.get(0);
    let url: String = row.get(1);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert!(
        url.starts_with(&format!("{IDP}slo/redirect?SAMLRequest=")),
        "{url}"
    );
    assert!(!active(&mut c, &session), "the session ends here at once");
    let answer = pysaml2(idp_spec(&mut c, json!({"op": "answer_logout", "url": url})));
    assert_eq!(answer["request_id"], json!(request_id));
    assert_eq!(answer["name_id"], "ada");
    assert_eq!(answer["session_indexes"], json!([index]));
    assert_eq!(answer["issuer"], SP);
    assert_eq!(answer["destination"], json!(format!("{IDP}slo/redirect")));
    let response_url = answer["url"].as_str().unwrap();
    assert!(
        response_url.starts_with(&format!("{SLO}?SAMLResponse=")),
        "{response_url}"
    );
    let l = logout(&mut c, None, Some(query_of(response_url))).expect("the IdP's answer");
    assert_eq!(l.kind, "logout_response");
    assert_eq!(l.status, "Success");
    assert_eq!(l.ended_sessions, vec![session.clone()]);
    assert_eq!(l.relay_state.as_deref(), Some("after/logout"));
    assert_eq!(l.reply_url, None);
    assert_refused(logout(&mut c, None, Some(query_of(response_url))), "replay");
    let ended_by: String = c
        .query_one(
            "SELECT ended_by FROM saml_jit.session WHERE id = $1::text::uuid",
            &[&session],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended_by, "sp_logout");

    // An IdP with only an HTTP-POST endpoint: the request is a signed form.
    c.execute(
        "UPDATE saml_jit.identity_provider SET slo_url_redirect = NULL",
        &[],
    )
    .unwrap();
    let (session, _) = log_in(&mut c, "ada");
    let row = c
        .query_one(
            "SELECT request_id, redirect_url, post_url, saml_request FROM saml_jit_logout_request($1::text::uuid)",
            &[&session],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, String>(2), format!("{IDP}slo/post"));
    let answer = pysaml2(idp_spec(
        &mut c,
        json!({"op": "answer_logout", "value": row.get::<_, String>(3)}),
    ));
    assert_eq!(answer["request_id"], json!(row.get::<_, String>(0)));
    let l = logout(&mut c, answer["value"].as_str(), None).expect("the IdP's POSTed answer");
    assert_eq!(
        (l.kind.as_str(), l.status.as_str()),
        ("logout_response", "Success")
    );
    assert_eq!(l.relay_state, None);
}

#[test]
fn a_forged_sp_logout_request_is_refused_by_pysaml2() {
    let mut c = setup("it_slo_sp_forged");
    let (session, _) = log_in(&mut c, "ada");
    let url: String = c
        .query_one(
            "SELECT redirect_url FROM saml_jit_logout_request($1::text::uuid, 'x')",
            &[&session],
        )
        .unwrap()
        .get(0);
    let forged = url.replace("&RelayState=x&", "&RelayState=y&");
    assert_ne!(forged, url);
    let refused = try_pysaml2(&[idp_spec(
        &mut c,
        json!({"op": "answer_logout", "url": forged}),
    )]);
    assert!(
        refused.is_err(),
        "pysaml2 must refuse a query whose signature does not match"
    );
}

#[test]
fn every_check_of_a_login_refuses_a_logout_message() {
    let mut c = setup("it_slo_refusals");
    log_in(&mut c, "ada");
    let request = |c: &mut Client, mut extra: Value| {
        extra["op"] = json!("logout_request");
        pysaml2(idp_spec(c, extra))
    };

    // Unsigned, both bindings.
    let unsigned = request(&mut c, json!({"sign": false}));
    let detail = assert_refused(
        logout(
            &mut c,
            None,
            Some(query_of(unsigned["url"].as_str().unwrap())),
        ),
        "unsigned",
    );
    assert!(detail.contains("SigAlg and Signature"), "{detail}");
    let unsigned = request(&mut c, json!({"binding": "post", "sign": false}));
    assert_refused(logout(&mut c, unsigned["value"].as_str(), None), "unsigned");

    // Signed by a key the IdP does not have.
    let mut other = json!({"key": fixture("other-idp.key"), "cert": fixture("other-idp.crt")});
    let forged = request(&mut c, other.clone());
    assert_refused(
        logout(
            &mut c,
            None,
            Some(query_of(forged["url"].as_str().unwrap())),
        ),
        "signature_invalid",
    );
    other["binding"] = json!("post");
    let forged = request(&mut c, other);
    assert_refused(
        logout(&mut c, forged["value"].as_str(), None),
        "signature_invalid",
    );

    // The signed query octets changed: RelayState swapped, parameters
    // re-encoded, or the message passed without its query string.
    let signed = request(&mut c, json!({"relay_state": "a"}));
    let query = query_of(signed["url"].as_str().unwrap()).to_string();
    let swapped = query.replace("RelayState=a", "RelayState=b");
    assert_refused(logout(&mut c, None, Some(&swapped)), "signature_invalid");
    let reencoded = query.replace("%2F", "%2f");
    assert_refused(logout(&mut c, None, Some(&reencoded)), "signature_invalid");
    let value = query
        .split('&')
        .find_map(|p| p.strip_prefix("SAMLRequest="))
        .unwrap()
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    assert_refused(logout(&mut c, Some(&value), None), "malformed");
    assert_refused(logout(&mut c, Some("b3RoZXI="), Some(&query)), "malformed");

    // A signed POST message without Destination, and one that carries a
    // second element with the signed root's ID (signature wrapping).
    let posted = request(&mut c, json!({"binding": "post"}));
    let xml = to_xml(posted["value"].as_str().unwrap());
    let at = xml.find(" Destination=\"").unwrap();
    let end = xml[at + 14..].find('"').unwrap() + at + 15;
    let undestined = resign(&format!("{}{}", &xml[..at], &xml[end..]));
    assert_refused(
        logout(&mut c, Some(&undestined), None),
        "destination_mismatch",
    );
    let id = posted["id"].as_str().unwrap();
    let close = xml.rfind("</").unwrap();
    let wrapped = format!(
        "{}<x:Copy xmlns:x=\"urn:example:wrap\" ID=\"{id}\"/>{}",
        &xml[..close],
        &xml[close..]
    );
    assert_refused(
        logout(&mut c, Some(&to_response(&wrapped)), None),
        "reference_invalid",
    );

    // RSA-SHA1 while the IdP may not use it.
    let sha1 = request(&mut c, json!({"sign_alg": "rsa-sha1"}));
    assert_refused(
        logout(&mut c, None, Some(query_of(sha1["url"].as_str().unwrap()))),
        "algorithm_forbidden",
    );

    // Addressed elsewhere, or to an SP without an SLO URL.
    let elsewhere = request(&mut c, json!({"slo": "https://evil.example/slo"}));
    let detail = assert_refused(
        logout(
            &mut c,
            None,
            Some(query_of(elsewhere["url"].as_str().unwrap())),
        ),
        "destination_mismatch",
    );
    assert!(detail.contains("evil.example"), "{detail}");
    let fine = request(&mut c, json!({}));
    c.execute("UPDATE saml_jit.service_provider SET slo_url = NULL", &[])
        .unwrap();
    let detail = assert_refused(
        logout(&mut c, None, Some(query_of(fine["url"].as_str().unwrap()))),
        "destination_mismatch",
    );
    assert!(detail.contains("slo_url"), "{detail}");
    c.execute("UPDATE saml_jit.service_provider SET slo_url = $1", &[&SLO])
        .unwrap();

    // Times: too old, from the future, past its NotOnOrAfter.
    let query = query_of(fine["url"].as_str().unwrap()).to_string();
    let at = |c: &mut Client, shift: &str| {
        let instant: String = c
            .query_one(
                &format!(
                    "SELECT to_char((now() + interval '{shift}') AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        let mut t = c.transaction().unwrap();
        t.batch_execute(&format!("SET LOCAL saml_jit.now_override = '{instant}'"))
            .unwrap();
        let r = t
            .query_one("SELECT kind FROM saml_jit_logout(NULL, $1)", &[&query])
            .map(|_| ())
            .map_err(|e| e.as_db_error().unwrap().message().to_string());
        t.rollback().unwrap();
        r
    };
    assert_eq!(
        at(&mut c, "1 hour").unwrap_err(),
        "SAML logout message rejected: expired"
    );
    assert_eq!(
        at(&mut c, "-1 hour").unwrap_err(),
        "SAML logout message rejected: not_yet_valid"
    );
    let stale = request(&mut c, json!({"not_on_or_after": "2020-01-01T00:00:00Z"}));
    assert_refused(
        logout(&mut c, None, Some(query_of(stale["url"].as_str().unwrap()))),
        "expired",
    );

    // An IdP nobody trusts, and a disabled one.
    let stranger = request(&mut c, json!({"idp": "https://stranger.example/"}));
    assert_refused(
        logout(
            &mut c,
            None,
            Some(query_of(stranger["url"].as_str().unwrap())),
        ),
        "unknown_issuer",
    );
    c.execute("UPDATE saml_jit.identity_provider SET enabled = false", &[])
        .unwrap();
    assert_refused(logout(&mut c, None, Some(&query)), "idp_disabled");
    c.execute("UPDATE saml_jit.identity_provider SET enabled = true", &[])
        .unwrap();

    // Hostile shapes: a DTD, a deflate bomb.
    let dtd = deflate_query("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>");
    assert_refused(logout(&mut c, None, Some(&dtd)), "dtd_forbidden");
    let bomb = deflate_query(&format!("<a>{}</a>", " ".repeat(50_000_000)));
    assert_refused(logout(&mut c, None, Some(&bomb)), "too_large");

    // The untouched message is still fine after all of that.
    let l = logout(&mut c, None, Some(&query)).expect("the genuine message");
    assert_eq!(l.kind, "logout_request");
}

#[test]
fn a_logout_response_must_answer_an_outstanding_request_of_ours() {
    let mut c = setup("it_slo_answers");
    let answer_for = |c: &mut Client| {
        let (session, _) = log_in(c, "ada");
        let url: String = c
            .query_one(
                "SELECT redirect_url FROM saml_jit_logout_request($1::text::uuid)",
                &[&session],
            )
            .unwrap()
            .get(0);
        let answer = pysaml2(idp_spec(c, json!({"op": "answer_logout", "url": url})));
        (
            answer["request_id"].as_str().unwrap().to_string(),
            answer["url"].as_str().unwrap().to_string(),
        )
    };
    let (request_id, url) = answer_for(&mut c);
    c.execute(
        "DELETE FROM saml_jit.logout_request WHERE request_id = $1",
        &[&request_id],
    )
    .unwrap();
    let detail = assert_refused(
        logout(&mut c, None, Some(query_of(&url))),
        "in_response_to_mismatch",
    );
    assert!(detail.contains("never sent"), "{detail}");
    let (request_id, url) = answer_for(&mut c);
    c.execute(
        "UPDATE saml_jit.logout_request SET expires_at = now() - interval '1 second' WHERE request_id = $1",
        &[&request_id],
    )
    .unwrap();
    let detail = assert_refused(
        logout(&mut c, None, Some(query_of(&url))),
        "in_response_to_mismatch",
    );
    assert!(detail.contains("expired"), "{detail}");
    let status: Option<String> = c
        .query_one(
            "SELECT status FROM saml_jit.logout_request WHERE request_id = $1",
            &[&request_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, None, "a refused answer changes nothing");

    // A signed LogoutResponse that answers nothing (no InResponseTo).
    let (session, _) = log_in(&mut c, "ada");
    c.execute(
        "UPDATE saml_jit.identity_provider SET slo_url_redirect = NULL",
        &[],
    )
    .unwrap();
    let value: String = c
        .query_one(
            "SELECT saml_request FROM saml_jit_logout_request($1::text::uuid)",
            &[&session],
        )
        .unwrap()
        .get(0);
    let answer = pysaml2(idp_spec(
        &mut c,
        json!({"op": "answer_logout", "value": value}),
    ));
    let xml = to_xml(answer["value"].as_str().unwrap());
    let start = xml.find(" InResponseTo=\"").unwrap();
    let end = xml[start + 15..].find('"').unwrap() + start + 16;
    let unanswering = resign(&format!("{}{}", &xml[..start], &xml[end..]));
    assert!(!to_xml(&unanswering).contains("InResponseTo"));
    assert_refused(logout(&mut c, Some(&unanswering), None), "unsolicited");
    // The genuine answer is still accepted.
    let l = logout(&mut c, answer["value"].as_str(), None).expect("the genuine answer");
    assert_eq!(l.status, "Success");
}

#[test]
fn sp_initiated_logout_explains_what_it_needs() {
    let mut c = setup("it_slo_needs");
    let (session, _) = log_in(&mut c, "ada");
    let err = |c: &mut Client, s: &str| {
        let e = c
            .query_one(
                "SELECT request_id FROM saml_jit_logout_request($1::text::uuid)",
                &[&s],
            )
            .unwrap_err();
        let db = e.as_db_error().unwrap();
        (db.code().code().to_string(), db.message().to_string())
    };
    let unknown = err(&mut c, "00000000-0000-4000-8000-000000000000");
    assert_eq!(unknown.0, "42704", "{unknown:?}");
    c.execute(
        "UPDATE saml_jit.identity_provider SET slo_url_redirect = NULL, slo_url_post = NULL",
        &[],
    )
    .unwrap();
    let no_endpoint = err(&mut c, &session);
    assert_eq!(no_endpoint.0, "55000");
    assert!(
        no_endpoint.1.contains("no Single Logout endpoint"),
        "{no_endpoint:?}"
    );
    assert!(
        active(&mut c, &session),
        "a refused logout request ends nothing"
    );
    c.execute("UPDATE saml_jit.identity_provider SET slo_url_redirect = 'https://idp.test.example/slo/redirect'", &[])
        .unwrap();
    c.execute("DELETE FROM saml_jit.sp_key", &[]).unwrap();
    let no_key = err(&mut c, &session);
    assert_eq!(no_key.0, "55000");
    assert!(no_key.1.contains("must be signed"), "{no_key:?}");
}

#[test]
fn an_encrypted_name_id_is_decrypted_with_the_sp_key() {
    let mut c = setup("it_slo_encrypted_id");
    let (session, _) = log_in(&mut c, "ada");
    let request = pysaml2(idp_spec(
        &mut c,
        json!({"op": "logout_request", "binding": "post"}),
    ));
    let xml = to_xml(request["value"].as_str().unwrap());
    // The NameID wrapped in an EncryptedID and encrypted for the SP
    // certificate by the xmlsec1 tool, then the request signed again.
    let start = xml
        .find("NameID")
        .map(|i| xml[..i].rfind('<').unwrap())
        .unwrap();
    let close = xml[start..].find("NameID>").unwrap() + start + "NameID>".len();
    let name_id = &xml[start..close];
    let prefix = &name_id[1..name_id.find("NameID").unwrap()];
    let wrapped = xml.replace(
        name_id,
        &format!("<{prefix}EncryptedID>{name_id}</{prefix}EncryptedID>"),
    );
    let dir = std::env::temp_dir().join(format!("saml_jit_slo_enc_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plain.xml"), &wrapped).unwrap();
    std::fs::write(
        dir.join("template.xml"),
        "<xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" \
         Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><xenc:EncryptionMethod \
         Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/><ds:KeyInfo \
         xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey><xenc:EncryptionMethod \
         Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/><xenc:CipherData>\
         <xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData>\
         <xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>",
    )
    .unwrap();
    let status = std::process::Command::new("xmlsec1")
        .args(["--encrypt", "--pubkey-cert-pem"])
        .arg(fixture("sp.crt"))
        .args(["--session-key", "aes-128", "--xml-data"])
        .arg(dir.join("plain.xml"))
        .args([
            "--node-xpath",
            "//*[local-name()='EncryptedID']/*[local-name()='NameID']",
        ])
        .arg("--output")
        .arg(dir.join("encrypted.xml"))
        .arg(dir.join("template.xml"))
        .status()
        .unwrap();
    assert!(status.success(), "xmlsec1 --encrypt");
    let encrypted = std::fs::read_to_string(dir.join("encrypted.xml")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!encrypted.contains(">ada<"), "the NameID is encrypted");
    let signed = resign(&encrypted);
    let l =
        logout(&mut c, Some(&signed), None).expect("a signed LogoutRequest with an EncryptedID");
    assert_eq!(l.ended_sessions, vec![session]);
    // Without the SP key nothing can be read from it.
    let again = resign(&encrypted.replace(request["id"].as_str().unwrap(), "_another_id"));
    c.execute("DELETE FROM saml_jit.sp_key", &[]).unwrap();
    assert_refused(logout(&mut c, Some(&again), None), "encrypted_unsupported");
}

/// A query string carrying `xml` deflated, as a hostile sender would make it.
fn deflate_query(xml: &str) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    d.write_all(xml.as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(d.finish().unwrap());
    let encoded: String = b64
        .bytes()
        .map(|b| match b {
            b'+' => "%2B".to_string(),
            b'/' => "%2F".to_string(),
            b'=' => "%3D".to_string(),
            b => (b as char).to_string(),
        })
        .collect();
    format!("SAMLRequest={encoded}&SigAlg=x&Signature=eA%3D%3D")
}
