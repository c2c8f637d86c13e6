//! Upgrade in place (pgmq's pattern): install 0.1.0 (sql/saml_jit--0.1.0.sql,
//! frozen from commit 7b98862), seed it through its own API, `ALTER
//! EXTENSION saml_jit UPDATE`, then check that nothing was lost, that logins
//! keep working (and replays stay refused), and that the upgraded catalog is
//! exactly the catalog of a fresh install of the current version.

use saml_jit_integration::*;

/// Every object of the extension, one line each, in a canonical order: what
/// pg_dump would write for them (definitions, columns, defaults, constraints,
/// indexes, triggers, grants, comments) plus the pg_extension_config_dump
/// registrations. Two installs with the same lines have the same catalog.
const CATALOG: &str = r#"
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'saml_jit'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT line FROM (
    -- functions and procedures: full definition and privileges
    SELECT 'function ' || pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, 'default')
           || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '') AS line
      FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    -- relations: kind, privileges, comment
    SELECT 'relation ' || c.oid::regclass::text || ' kind=' || c.relkind::text || ' acl='
           || coalesce(c.relacl::text, 'default') || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
    UNION ALL
    -- columns of the extension's tables and views
    SELECT 'column ' || c.oid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
           || coalesce(' generated ' || nullif(a.attgenerated::text, ''), '')
           || coalesce(' identity ' || nullif(a.attidentity::text, ''), '')
           || ' compression=' || coalesce(nullif(a.attcompression::text, ''), '-')
           || ' comment=' || coalesce(col_description(c.oid, a.attnum), '')
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    UNION ALL
    SELECT 'constraint ' || c.oid::regclass::text || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
      JOIN pg_constraint k ON k.conrelid = c.oid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
      JOIN pg_index i ON i.indrelid = c.oid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
      JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT 'view ' || c.oid::regclass::text || ' ' || pg_get_viewdef(c.oid)
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
     WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, 'default')
      FROM members m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
    UNION ALL
    SELECT 'type ' || t.oid::regtype::text
      FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT 'other ' || pg_describe_object(m.classid, m.objid, 0)
      FROM members m
     WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_namespace'::regclass, 'pg_type'::regclass)
    UNION ALL
    SELECT 'config_dump ' || cfg.rel::regclass::text || ' ' || coalesce(cond, '')
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS cfg(rel, cond)
) lines
ORDER BY line
"#;

fn catalog(c: &mut Client) -> Vec<String> {
    c.query(CATALOG, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// The ID of the (first) Assertion of a base64 response.
fn assertion_id(response: &str) -> String {
    let xml = to_xml(response);
    let tag = &xml[find_start_tag(&xml, "Assertion").unwrap()..];
    let value = &tag[tag.find(" ID=\"").unwrap() + 5..];
    value[..value.find('"').unwrap()].to_string()
}

fn count(c: &mut Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM saml_jit.{table}"), &[])
        .unwrap()
        .get(0)
}

fn database(name: &str) -> Client {
    let mut admin = Client::connect(&dsn(), NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    Client::connect(&dsn_for(name, "postgres"), NoTls).unwrap()
}

#[test]
fn version_0_1_0_upgrades_in_place() {
    let mut c = database("it_upgrade");
    c.batch_execute("CREATE EXTENSION saml_jit VERSION '0.1.0'")
        .unwrap();
    // Trust configuration seeded through 0.1.0's own API.
    trust_demo_idp(&mut c);
    // The SP key as 0.1.0 stored it (one row per SP). Its own function
    // cannot be called here: 0.2.0's takes one more argument.
    c.execute(
        "INSERT INTO saml_jit.sp_key (sp_id, private_key, certificate)
         SELECT id, $1, $2 FROM saml_jit.service_provider",
        &[&read_fixture("sp.key"), &read_fixture("sp.crt")],
    )
    .unwrap();
    c.batch_execute(&format!(
        "SELECT saml_jit_add_idp_certificate('{IDP}', $cert${}$cert$);
         INSERT INTO saml_jit.attribute_mapping (attribute, target) VALUES ('title', 'title');
         UPDATE saml_jit.identity_provider SET sso_url_redirect = 'https://idp.test.example/sso'",
        read_fixture("other-idp.crt")
    ))
    .unwrap();
    // Users, audit rows and replay rows as 0.1.0 wrote them. (They are
    // written with SQL: the installed library is the new one, and between the
    // package upgrade and ALTER EXTENSION UPDATE it refuses to log anyone in
    // with the old schema, saying what to do.)
    let first = mint_one(spec("before-upgrade"));
    let first_id = assertion_id(&first);
    let user_id: String = c
        .query_one(
            "WITH u AS (
                 INSERT INTO saml_jit.users (idp_id, subject, name_id, email, last_login_at, login_count)
                 SELECT id, 'before-upgrade', 'before-upgrade', 'before-upgrade@example.com', now(), 1
                   FROM saml_jit.identity_provider RETURNING id, idp_id
             ), a AS (
                 INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject, assertion_id)
                 SELECT e, u.idp_id, u.id, 'before-upgrade', $1 FROM u, unnest('{login,created}'::text[]) e
             ), r AS (
                 INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until)
                 SELECT idp_id, $1, now() + interval '1 hour' FROM u
             )
             SELECT id::text FROM u",
            &[&first_id],
        )
        .unwrap()
        .get(0);
    let mixed = c
        .query_one(
            "SELECT * FROM saml_jit_login($1)",
            &[&mint_one(spec("second"))],
        )
        .unwrap_err();
    let db = mixed.as_db_error().unwrap();
    assert_eq!(db.code().code(), "55000", "{db:?}");
    assert!(
        db.message().contains("version 0.1.0")
            && db
                .hint()
                .unwrap_or("")
                .contains("ALTER EXTENSION saml_jit UPDATE"),
        "{db:?}"
    );
    // A rejection needs no table and is still given.
    let junk = c
        .query_one("SELECT user_id FROM saml_jit_login('not base64 !!')", &[])
        .unwrap_err();
    assert_eq!(
        junk.as_db_error().map(|d| (d.code().code(), d.message())),
        Some(("28000", "SAML response rejected: malformed"))
    );
    // 0.2.0's saml_jit_authn_request takes more arguments than 0.1.0
    // declared: in the mixed state a call fails with an error (the server
    // stays up), never with a request built from unset arguments.
    let mixed = c
        .query_one("SELECT request_id FROM saml_jit_authn_request($1)", &[&IDP])
        .unwrap_err();
    assert!(mixed.as_db_error().is_some(), "{mixed:?}");
    // An outstanding request as 0.1.0 stored it.
    let request = "_0123456789abcdef0123456789abcdef".to_string();
    c.execute(
        "INSERT INTO saml_jit.authn_request (request_id, idp_id, relay_state, expires_at)
         SELECT $1, id, '/from-0.1.0', now() + interval '10 minutes' FROM saml_jit.identity_provider",
        &[&request],
    )
    .unwrap();
    let tables = [
        "service_provider",
        "sp_key",
        "identity_provider",
        "idp_certificate",
        "attribute_mapping",
        "users",
        "audit_log",
        "consumed_assertion",
        "authn_request",
    ];
    let counts: Vec<i64> = tables.iter().map(|t| count(&mut c, t)).collect();
    assert!(counts.iter().all(|n| *n > 0), "{tables:?}: {counts:?}");

    // An application role's grant survives the upgrade (saml_jit_login is
    // dropped and created again for its new columns).
    c.batch_execute(
        "DO $$ BEGIN CREATE ROLE it_upgrade_app; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         GRANT EXECUTE ON FUNCTION saml_jit_login(text, text, inet) TO it_upgrade_app;
         GRANT EXECUTE ON FUNCTION saml_jit_purge() TO it_upgrade_app WITH GRANT OPTION;
         GRANT EXECUTE ON FUNCTION saml_jit_authn_request(text, text) TO it_upgrade_app",
    )
    .unwrap();
    c.batch_execute("ALTER EXTENSION saml_jit UPDATE").unwrap();
    let kept: (bool, bool, bool) = {
        let row = c
            .query_one(
                "SELECT has_function_privilege('it_upgrade_app', 'saml_jit_login(text, text, inet)', 'EXECUTE'),
                        has_function_privilege('it_upgrade_app', 'saml_jit_purge()', 'EXECUTE WITH GRANT OPTION'),
                        has_function_privilege('it_upgrade_app',
                            'saml_jit_authn_request(text, text, text, boolean, boolean)', 'EXECUTE')",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(kept, (true, true, true), "grants kept across the upgrade");
    c.batch_execute(
        "REVOKE EXECUTE ON FUNCTION saml_jit_login(text, text, inet) FROM it_upgrade_app;
         REVOKE EXECUTE ON FUNCTION saml_jit_purge() FROM it_upgrade_app CASCADE;
         REVOKE EXECUTE ON FUNCTION saml_jit_authn_request(text, text, text, boolean, boolean) FROM it_upgrade_app",
    )
    .unwrap();
    let version: String = c
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'saml_jit'",
            &[],
        )
        .unwrap()
        .get(0);
    let (library, sql): (String, String) = {
        let row = c
            .query_one("SELECT * FROM saml_jit_version()", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(sql, version);
    assert_eq!(
        library, version,
        "the upgrade reaches the library's version"
    );

    // Nothing lost...
    let after: Vec<i64> = tables.iter().map(|t| count(&mut c, t)).collect();
    assert_eq!(after, counts, "{tables:?}");
    // ...an assertion consumed before the upgrade is still a replay...
    assert_rejected(login(&mut c, &first, None), "replay");
    // ...the same user logs in again, and the outstanding request is answered.
    let again = login(&mut c, &mint_one(spec("before-upgrade")), None).expect("login");
    assert_eq!((again.user_id, again.action.as_str()), (user_id, "updated"));
    let mut answering = spec("answers");
    answering["in_response_to"] = serde_json::json!(request);
    let answered =
        login(&mut c, &mint_one(answering), None).expect("answers the request sent by 0.1.0");
    assert_eq!(answered.relay_state.as_deref(), Some("/from-0.1.0"));

    // The upgraded catalog is a fresh install's.
    let mut fresh = database("it_upgrade_fresh");
    fresh.batch_execute("CREATE EXTENSION saml_jit").unwrap();
    let upgraded = catalog(&mut c);
    let installed = catalog(&mut fresh);
    let missing: Vec<&String> = installed.iter().filter(|l| !upgraded.contains(l)).collect();
    let extra: Vec<&String> = upgraded.iter().filter(|l| !installed.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the upgrade script and a fresh install differ.\nonly in a fresh install:\n{}\nonly after the upgrade:\n{}",
        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
        extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    assert!(
        installed.len() > 100,
        "the catalog query sees the extension"
    );
}
