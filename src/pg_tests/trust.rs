#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::pg_tests::{assert_fails, error_of, DEMO_CERT, DEMO_KEY};

    fn add_demo_sp() -> i64 {
        Spi::get_one::<i64>(
            "SELECT saml_jit_add_sp('https://app.example/sp', 'https://app.example/acs')",
        )
        .unwrap()
        .unwrap()
    }

    fn add_demo_idp() -> i64 {
        add_demo_sp();
        Spi::get_one_with_args::<i64>(
            "SELECT saml_jit_add_idp('https://idp.example/', $1)",
            &[DEMO_CERT.into()],
        )
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn add_sp_accepts_any_non_empty_entity_id() {
        add_demo_sp();
        // SAML entity IDs are URIs, not always URLs.
        let id = Spi::get_one::<i64>("SELECT saml_jit_add_sp('audience', 'recipient')").unwrap();
        assert!(id.is_some());
        assert_fails(
            "SELECT saml_jit_add_sp('', 'https://x/acs')",
            "22023",
            "must not be empty",
        );
        assert_fails("SELECT saml_jit_add_sp('x', '  ')", "22023", "ACS URL");
        assert_fails(
            "SELECT saml_jit_add_sp('audience', 'elsewhere')",
            "23505",
            "already registered",
        );
    }

    #[pg_test]
    fn add_idp_stores_certificate_metadata() {
        let idp = add_demo_idp();
        let (fingerprint, subject, valid_now) = Spi::get_three_with_args::<String, String, bool>(
            "SELECT fingerprint_sha256, subject, active AND not_after > now()
               FROM saml_jit.idp_certificate WHERE idp_id = $1",
            &[idp.into()],
        )
        .unwrap();
        assert_eq!(fingerprint.unwrap().len(), 95);
        assert!(subject.unwrap().contains("saml_jit demo IdP"));
        assert_eq!(valid_now, Some(true));
        // Policy defaults are the ones API.md states.
        let defaults = Spi::get_one::<bool>(
            "SELECT enabled AND NOT allow_sha1 AND require_audience AND allow_idp_initiated
                AND clock_skew = interval '3 minutes' AND user_key = 'name_id'
                AND jit_create AND jit_update
           FROM saml_jit.identity_provider WHERE entity_id = 'https://idp.example/'",
        )
        .unwrap();
        assert_eq!(defaults, Some(true));
    }

    #[pg_test]
    fn add_idp_refuses_bad_input_clearly() {
        assert_fails(
            &format!("SELECT saml_jit_add_idp('https://idp.example/', '{DEMO_CERT}')"),
            "42704",
            "no service provider",
        );
        add_demo_sp();
        assert_fails(
            &format!(
                "SELECT saml_jit_add_idp('https://idp.example/', '{DEMO_CERT}', 'https://nope/')"
            ),
            "42704",
            "unknown service provider",
        );
        assert_fails(
            "SELECT saml_jit_add_idp('https://idp.example/', 'not a certificate')",
            "22023",
            "invalid IdP certificate",
        );
        assert_fails(
            &format!("SELECT saml_jit_add_idp('https://idp.example/', '{DEMO_KEY}')"),
            "22023",
            "private key",
        );
        let truncated = &DEMO_CERT[..DEMO_CERT.len() - 200];
        assert_fails(
            &format!("SELECT saml_jit_add_idp('https://idp.example/', '{truncated}')"),
            "22023",
            "invalid IdP certificate",
        );
        // Nothing was left behind by the refused calls.
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM saml_jit.identity_provider").unwrap(),
            Some(0)
        );
        add_demo_idp_again_is_refused();
    }

    fn add_demo_idp_again_is_refused() {
        Spi::get_one_with_args::<i64>(
            "SELECT saml_jit_add_idp('https://idp.example/', $1)",
            &[DEMO_CERT.into()],
        )
        .unwrap();
        assert_fails(
            &format!("SELECT saml_jit_add_idp('https://idp.example/', '{DEMO_CERT}')"),
            "23505",
            "already trusted",
        );
    }

    #[pg_test]
    fn several_sps_need_an_explicit_choice() {
        add_demo_sp();
        Spi::run("SELECT saml_jit_add_sp('second', 'https://second/acs')").unwrap();
        assert_fails(
            &format!("SELECT saml_jit_add_idp('https://idp.example/', '{DEMO_CERT}')"),
            "22023",
            "2 service providers",
        );
        let ok = error_of(&format!(
            "SELECT saml_jit_add_idp('https://idp.example/', '{DEMO_CERT}', 'second')"
        ));
        assert_eq!(ok, None);
    }

    #[pg_test]
    fn certificate_rollover_and_duplicates() {
        add_demo_idp();
        assert_fails(
            &format!("SELECT saml_jit_add_idp_certificate('https://idp.example/', '{DEMO_CERT}')"),
            "23505",
            "already trusted",
        );
        assert_fails(
            &format!("SELECT saml_jit_add_idp_certificate('https://other/', '{DEMO_CERT}')"),
            "42704",
            "unknown identity provider",
        );
        // A plain INSERT goes through the same validation.
        assert_fails(
            "INSERT INTO saml_jit.idp_certificate (idp_id, certificate)
         SELECT id, 'garbage' FROM saml_jit.identity_provider",
            "22023",
            "invalid IdP certificate",
        );
    }

    #[pg_test]
    fn clock_skew_is_bounded() {
        add_demo_idp();
        assert_fails(
            "UPDATE saml_jit.identity_provider SET clock_skew = interval '1 hour'",
            "23514",
            "identity_provider_clock_skew_range",
        );
        assert_fails(
            "UPDATE saml_jit.identity_provider SET clock_skew = interval '-1 second'",
            "23514",
            "identity_provider_clock_skew_range",
        );
        assert_eq!(
            error_of("UPDATE saml_jit.identity_provider SET clock_skew = interval '10 minutes'"),
            None
        );
    }

    #[pg_test]
    fn user_status_and_audit_event_are_constrained() {
        let idp = add_demo_idp();
        assert_fails(
        &format!("INSERT INTO saml_jit.users (idp_id, subject, status) VALUES ({idp}, 'u', 'zombie')"),
        "23514",
        "users_status_known",
    );
        Spi::run(&format!(
            "INSERT INTO saml_jit.users (idp_id, subject) VALUES ({idp}, 'u')"
        ))
        .unwrap();
        assert_fails(
            &format!("INSERT INTO saml_jit.users (idp_id, subject) VALUES ({idp}, 'u')"),
            "23505",
            "users_idp_subject_unique",
        );
        assert_fails(
            "INSERT INTO saml_jit.audit_log (event) VALUES ('whatever')",
            "23514",
            "audit_log_event_known",
        );
    }

    #[pg_test]
    fn writers_are_security_definer_with_pinned_search_path_and_not_public() {
        let bad = Spi::get_one::<String>(
            "SELECT string_agg(p.proname, ', ')
           FROM pg_proc p
          WHERE p.proname IN ('saml_jit_add_sp', 'saml_jit_add_idp', 'saml_jit_add_idp_certificate',
                                 'saml_jit_login', 'saml_jit_deprovision_expired', 'saml_jit_purge',
                                 'saml_jit_disable_users', 'saml_jit_enable_users',
                                 'saml_jit_session_active', 'saml_jit_end_session')
            AND NOT (p.prosecdef
                     AND EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
                     AND NOT has_function_privilege('public', p.oid, 'EXECUTE'))",
        )
        .unwrap();
        assert_eq!(bad, None, "functions that break the privilege rules");
    }

    #[pg_test]
    fn no_saml_jit_function_is_executable_by_public() {
        let open = Spi::get_one::<String>(
            "SELECT string_agg(p.oid::regprocedure::text, ', ')
               FROM pg_proc p
               JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
               JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'saml_jit'
              WHERE p.proname LIKE 'saml\\_jit\\_%'
                AND has_function_privilege('public', p.oid, 'EXECUTE')",
        )
        .unwrap();
        assert_eq!(open, None, "executable by PUBLIC");
    }

    #[pg_test]
    fn user_tables_are_kept_by_pg_dump() {
        let missing = Spi::get_one::<String>(
            "SELECT string_agg(t, ', ') FROM unnest(ARRAY[
             'saml_jit.service_provider', 'saml_jit.identity_provider', 'saml_jit.idp_certificate',
             'saml_jit.attribute_mapping', 'saml_jit.group_mapping', 'saml_jit.users', 'saml_jit.audit_log',
             'saml_jit.consumed_assertion', 'saml_jit.authn_request', 'saml_jit.session']) t
          WHERE t::regclass::oid <> ALL (
             SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'saml_jit')",
        )
        .unwrap();
        assert_eq!(
            missing, None,
            "tables not registered with pg_extension_config_dump"
        );
    }

    #[pg_test]
    fn certificate_info_describes_without_storing() {
        let alg = Spi::get_one_with_args::<String>(
            "SELECT key_algorithm FROM saml_jit_certificate_info($1)",
            &[DEMO_CERT.into()],
        )
        .unwrap();
        assert_eq!(alg.as_deref(), Some("RSA 2048"));
    }
}
