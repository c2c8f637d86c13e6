-- Metadata in and out.

-- Creates or updates an IdP from its metadata: every signing certificate is
-- trusted (new ones added, ones the metadata no longer lists deactivated),
-- SSO and Single Logout endpoints, NameID formats and validUntil are recorded. Expired
-- metadata, or metadata without a signing certificate, is refused.
CREATE FUNCTION @extschema@.saml_jit_import_idp_metadata(metadata text, sp_entity_id text DEFAULT NULL,
                                                        entity_id text DEFAULT NULL)
RETURNS TABLE (idp_id bigint, idp_entity_id text, created boolean,
               certificates_added integer, certificates_deactivated integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    m record;
    cert text;
    info record;
    fingerprints text[] := '{}';
    the_idp bigint;
    is_new boolean := false;
    added integer := 0;
    deactivated integer := 0;
BEGIN
    SELECT * INTO m FROM @extschema@.saml_jit_parse_idp_metadata(metadata, entity_id);
    IF m.valid_until IS NOT NULL AND m.valid_until < saml_jit.effective_now() THEN
        RAISE EXCEPTION 'the metadata of % expired at %', quote_literal(m.entity_id), m.valid_until
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Fetch the IdP''s current metadata.';
    END IF;
    IF cardinality(m.certificates) = 0 THEN
        RAISE EXCEPTION 'the metadata of % lists no signing certificate', quote_literal(m.entity_id)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i.id INTO the_idp FROM saml_jit.identity_provider i WHERE i.entity_id = m.entity_id;
    IF the_idp IS NULL THEN
        the_idp := @extschema@.saml_jit_add_idp(m.entity_id, m.certificates[1], sp_entity_id);
        is_new := true;
        added := 1;
    END IF;
    FOREACH cert IN ARRAY m.certificates LOOP
        SELECT * INTO info FROM @extschema@.saml_jit_certificate_info(cert);
        fingerprints := fingerprints || info.fingerprint_sha256;
        UPDATE saml_jit.idp_certificate c SET active = true
         WHERE c.idp_id = the_idp AND c.fingerprint_sha256 = info.fingerprint_sha256;
        IF NOT FOUND THEN
            INSERT INTO saml_jit.idp_certificate (idp_id, certificate) VALUES (the_idp, info.pem);
            added := added + 1;
        END IF;
    END LOOP;
    UPDATE saml_jit.idp_certificate c SET active = false
     WHERE c.idp_id = the_idp AND c.active AND c.fingerprint_sha256 <> ALL (fingerprints);
    GET DIAGNOSTICS deactivated = ROW_COUNT;
    UPDATE saml_jit.identity_provider i
       SET sso_url_redirect = m.sso_url_redirect, sso_url_post = m.sso_url_post,
           slo_url_redirect = m.slo_url_redirect, slo_url_post = m.slo_url_post,
           slo_response_url_redirect = m.slo_response_url_redirect,
           slo_response_url_post = m.slo_response_url_post,
           name_id_formats = m.name_id_formats, metadata_valid_until = m.valid_until,
           sign_authn_requests = m.want_authn_requests_signed,
           metadata_imported_at = now()
     WHERE i.id = the_idp;
    INSERT INTO saml_jit.audit_log (event, idp_id, detail)
    VALUES ('configured', the_idp, jsonb_build_object(
        'via', 'saml_jit_import_idp_metadata', 'created', is_new,
        'certificates_added', added, 'certificates_deactivated', deactivated));
    RETURN QUERY SELECT the_idp, m.entity_id, is_new, added, deactivated;
END
$$;

-- This SP's metadata as xml, to send to IdP administrators.
CREATE FUNCTION @extschema@.saml_jit_sp_metadata(sp_entity_id text DEFAULT NULL) RETURNS xml
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT xmlparse(DOCUMENT @extschema@.saml_jit_sp_metadata_text(sp_entity_id))
$$;

REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_import_idp_metadata(text, text, text) FROM PUBLIC;

-- One metadata refresh of an IdP, as saml-jit-refresh-metadata reports it:
-- the document it fetched from identity_provider.metadata_url, or the error
-- that kept it from fetching one. The document is imported with the usual
-- rollover rules (saml_jit_import_idp_metadata); whatever fails (fetch,
-- parse, expired validUntil, another entity) is recorded on the IdP row and
-- changes nothing else: its certificates stay as they were.
CREATE FUNCTION @extschema@.saml_jit_refresh_idp_metadata(idp_entity_id text, metadata text,
                                                         fetch_error text DEFAULT NULL)
RETURNS TABLE (refreshed boolean, certificates_added integer, certificates_deactivated integer,
               next_refresh timestamptz, error text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    the_idp bigint;
    imported record;
    cache interval;
    problem text := fetch_error;
BEGIN
    SELECT i.id INTO the_idp FROM saml_jit.identity_provider i WHERE i.entity_id = idp_entity_id;
    IF the_idp IS NULL THEN
        RAISE EXCEPTION 'unknown identity provider %', quote_literal(idp_entity_id)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF problem IS NULL THEN
        BEGIN
            SELECT m.cache_duration INTO cache
              FROM @extschema@.saml_jit_parse_idp_metadata(metadata, idp_entity_id) m;
            SELECT * INTO imported
              FROM @extschema@.saml_jit_import_idp_metadata(metadata, entity_id => idp_entity_id);
        EXCEPTION WHEN OTHERS THEN
            problem := SQLERRM;
        END;
    END IF;
    IF problem IS NOT NULL THEN
        UPDATE saml_jit.identity_provider i SET metadata_refresh_error = problem WHERE i.id = the_idp;
        INSERT INTO saml_jit.audit_log (event, idp_id, detail)
        VALUES ('configured', the_idp, jsonb_build_object('via', 'saml_jit_refresh_idp_metadata',
                                                          'refreshed', false, 'error', problem));
        RETURN QUERY SELECT false, 0, 0, NULL::timestamptz, problem;
        RETURN;
    END IF;
    UPDATE saml_jit.identity_provider i
       SET metadata_refreshed_at = now(), metadata_refresh_error = NULL,
           metadata_cache_until = now() + cache
     WHERE i.id = the_idp;
    RETURN QUERY SELECT true, imported.certificates_added, imported.certificates_deactivated,
                        now() + cache, NULL::text;
END
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_refresh_idp_metadata(text, text, text) FROM PUBLIC;

-- The IdPs saml-jit-refresh-metadata should fetch now: those with a
-- metadata_url whose copy is past its cacheDuration (or has none), whose
-- validUntil is less than a day away, or whose last refresh failed; with
-- `force`, all of them; `entity_ids` restricts to these IdPs. SECURITY
-- DEFINER, so the command's role needs EXECUTE on this function and on
-- saml_jit_refresh_idp_metadata, nothing else.
CREATE FUNCTION @extschema@.saml_jit_metadata_refresh_due(force boolean DEFAULT false, entity_ids text[] DEFAULT '{}')
RETURNS TABLE (idp_entity_id text, metadata_url text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.entity_id, i.metadata_url
      FROM saml_jit.identity_provider i
     WHERE i.metadata_url IS NOT NULL
       AND (cardinality(entity_ids) = 0 OR i.entity_id = ANY (entity_ids))
       AND (force
            OR i.metadata_cache_until IS NULL OR i.metadata_cache_until <= now()
            OR i.metadata_valid_until <= now() + interval '1 day'
            OR i.metadata_refresh_error IS NOT NULL)
     ORDER BY i.entity_id
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_metadata_refresh_due(boolean, text[]) FROM PUBLIC;
