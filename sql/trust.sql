-- Trust management: registering this SP, trusting IdPs and their certificates.
-- Every writer is SECURITY DEFINER with a pinned search_path and is not
-- executable by PUBLIC: an administrator grants it to whom it chooses.

-- The derived columns of idp_certificate always come from the certificate
-- itself, whether it arrives through the helpers below or a plain INSERT.
CREATE FUNCTION saml_jit.idp_certificate_describe() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    info record;
BEGIN
    SELECT * INTO info FROM @extschema@.saml_jit_certificate_info(NEW.certificate);
    NEW.certificate        := info.pem;
    NEW.fingerprint_sha256 := info.fingerprint_sha256;
    NEW.subject            := info.subject;
    NEW.issuer             := info.issuer;
    NEW.serial_number      := info.serial_number;
    NEW.key_algorithm      := info.key_algorithm;
    NEW.not_before         := info.not_before;
    NEW.not_after          := info.not_after;
    RETURN NEW;
END
$$;
CREATE TRIGGER idp_certificate_describe
    BEFORE INSERT OR UPDATE OF certificate ON saml_jit.idp_certificate
    FOR EACH ROW EXECUTE FUNCTION saml_jit.idp_certificate_describe();

-- Certificates that stop being valid soon (or already have): what to renew.
CREATE VIEW saml_jit.certificate_expiry AS
SELECT idp.entity_id AS idp_entity_id,
       c.id AS certificate_id,
       c.subject,
       c.fingerprint_sha256,
       c.not_after,
       c.not_after - now() AS remaining,
       c.not_after < now() AS expired
  FROM saml_jit.idp_certificate c
  JOIN saml_jit.identity_provider idp ON idp.id = c.idp_id
 WHERE c.active AND c.not_after < now() + interval '30 days';
COMMENT ON VIEW saml_jit.certificate_expiry IS
    'active IdP certificates that expire within 30 days or have expired';

CREATE FUNCTION @extschema@.saml_jit_add_sp(entity_id text, acs_url text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    IF coalesce(btrim(saml_jit_add_sp.entity_id), '') = '' THEN
        RAISE EXCEPTION 'SP entity ID must not be empty'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use the entity ID your IdPs know this application by (the expected Audience).';
    END IF;
    IF coalesce(btrim(saml_jit_add_sp.acs_url), '') = '' THEN
        RAISE EXCEPTION 'ACS URL must not be empty'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use the URL where IdPs POST the SAMLResponse (the expected Destination and Recipient).';
    END IF;
    BEGIN
        INSERT INTO saml_jit.service_provider (entity_id, acs_url)
        VALUES (saml_jit_add_sp.entity_id, saml_jit_add_sp.acs_url)
        RETURNING id INTO new_id;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'service provider % is already registered', quote_literal(saml_jit_add_sp.entity_id)
            USING ERRCODE = 'unique_violation',
                  HINT = 'To change its ACS URL: UPDATE saml_jit.service_provider SET acs_url = ... WHERE entity_id = ...';
    END;
    RETURN new_id;
END
$$;

CREATE FUNCTION @extschema@.saml_jit_add_idp(entity_id text, certificate text, sp_entity_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sp_id bigint;
    sp_count bigint;
    new_id bigint;
BEGIN
    IF coalesce(btrim(saml_jit_add_idp.entity_id), '') = '' THEN
        RAISE EXCEPTION 'IdP entity ID must not be empty'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use the IdP''s entity ID: the Issuer of its responses, found in its metadata.';
    END IF;
    IF saml_jit_add_idp.sp_entity_id IS NULL THEN
        SELECT count(*), min(sp.id) INTO sp_count, sp_id FROM saml_jit.service_provider sp;
        IF sp_count = 0 THEN
            RAISE EXCEPTION 'no service provider is registered'
                USING ERRCODE = 'undefined_object',
                      HINT = 'Register this application first: SELECT saml_jit_add_sp(entity_id, acs_url).';
        ELSIF sp_count > 1 THEN
            RAISE EXCEPTION '% service providers are registered: say which one trusts this IdP', sp_count
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass sp_entity_id => ''...''.';
        END IF;
    ELSE
        SELECT sp.id INTO sp_id FROM saml_jit.service_provider sp
         WHERE sp.entity_id = saml_jit_add_idp.sp_entity_id;
        IF sp_id IS NULL THEN
            RAISE EXCEPTION 'unknown service provider %', quote_literal(saml_jit_add_idp.sp_entity_id)
                USING ERRCODE = 'undefined_object',
                      HINT = 'Registered SPs are listed in saml_jit.service_provider; add one with saml_jit_add_sp.';
        END IF;
    END IF;
    BEGIN
        INSERT INTO saml_jit.identity_provider (sp_id, entity_id)
        VALUES (sp_id, saml_jit_add_idp.entity_id)
        RETURNING id INTO new_id;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'identity provider % is already trusted', quote_literal(saml_jit_add_idp.entity_id)
            USING ERRCODE = 'unique_violation',
                  HINT = 'Add a further signing certificate with saml_jit_add_idp_certificate, or change its policy with UPDATE saml_jit.identity_provider.';
    END;
    INSERT INTO saml_jit.idp_certificate (idp_id, certificate)
    VALUES (new_id, saml_jit_add_idp.certificate);
    RETURN new_id;
END
$$;

CREATE FUNCTION @extschema@.saml_jit_add_idp_certificate(idp_entity_id text, certificate text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    idp_id bigint;
    new_id bigint;
    info record;
BEGIN
    SELECT idp.id INTO idp_id FROM saml_jit.identity_provider idp
     WHERE idp.entity_id = saml_jit_add_idp_certificate.idp_entity_id;
    IF idp_id IS NULL THEN
        RAISE EXCEPTION 'unknown identity provider %', quote_literal(saml_jit_add_idp_certificate.idp_entity_id)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Trust it first with saml_jit_add_idp(entity_id, certificate).';
    END IF;
    SELECT * INTO info FROM @extschema@.saml_jit_certificate_info(saml_jit_add_idp_certificate.certificate);
    BEGIN
        INSERT INTO saml_jit.idp_certificate (idp_id, certificate)
        VALUES (idp_id, info.pem)
        RETURNING id INTO new_id;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'this certificate (SHA-256 %) is already trusted for %',
                        info.fingerprint_sha256, quote_literal(saml_jit_add_idp_certificate.idp_entity_id)
            USING ERRCODE = 'unique_violation',
                  HINT = 'To re-enable it: UPDATE saml_jit.idp_certificate SET active = true WHERE fingerprint_sha256 = ...';
    END;
    RETURN new_id;
END
$$;

REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_add_sp(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_add_idp(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_add_idp_certificate(text, text) FROM PUBLIC;

-- SP key rollover, after saml_jit_set_sp_key(..., next => true) stored the
-- next key pair and the IdPs had time to learn its certificate from the SP
-- metadata: the next pair becomes current (it signs, and is published first);
-- the current one becomes previous and still decrypts until it is retired.
CREATE FUNCTION @extschema@.saml_jit_promote_sp_key(sp_entity_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sp bigint;
    promoted text;
BEGIN
    SELECT s.id INTO sp FROM saml_jit.service_provider s WHERE s.entity_id = saml_jit_promote_sp_key.sp_entity_id;
    IF sp IS NULL THEN
        RAISE EXCEPTION 'unknown service provider %', quote_literal(sp_entity_id)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT FROM saml_jit.sp_key k WHERE k.sp_id = sp AND k.state = 'next') THEN
        RAISE EXCEPTION 'the service provider % has no next key to promote', quote_literal(sp_entity_id)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Store one first with saml_jit_set_sp_key(sp_entity_id, private_key, certificate, next => true).';
    END IF;
    DELETE FROM saml_jit.sp_key k WHERE k.sp_id = sp AND k.state = 'previous';
    UPDATE saml_jit.sp_key k SET state = 'previous', updated_at = now() WHERE k.sp_id = sp AND k.state = 'current';
    UPDATE saml_jit.sp_key k SET state = 'current', updated_at = now() WHERE k.sp_id = sp AND k.state = 'next'
    RETURNING k.fingerprint_sha256 INTO promoted;
    INSERT INTO saml_jit.audit_log (event, detail)
    VALUES ('configured', jsonb_build_object('via', 'saml_jit_promote_sp_key', 'sp_entity_id', sp_entity_id,
                                             'current_fingerprint_sha256', promoted));
END
$$;

-- Ends the rollover: the previous key pair no longer decrypts anything.
-- True when there was one to retire.
CREATE FUNCTION @extschema@.saml_jit_retire_sp_key(sp_entity_id text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    retired text;
BEGIN
    DELETE FROM saml_jit.sp_key k
     USING saml_jit.service_provider s
     WHERE k.sp_id = s.id AND s.entity_id = saml_jit_retire_sp_key.sp_entity_id AND k.state = 'previous'
    RETURNING k.fingerprint_sha256 INTO retired;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO saml_jit.audit_log (event, detail)
    VALUES ('configured', jsonb_build_object('via', 'saml_jit_retire_sp_key', 'sp_entity_id', sp_entity_id,
                                             'retired_fingerprint_sha256', retired));
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_promote_sp_key(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_retire_sp_key(text) FROM PUBLIC;
