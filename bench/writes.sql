-- The writes a login makes, without any SAML work: the user upsert, the
-- replay row, the session row and the audit rows ('login', and 'created'
-- with the row image), in one statement as saml_jit_login writes them. A
-- stripped-down variant: what a login would cost if verifying and mapping
-- were free (BENCHMARKS.md, "what bounds it").
WITH p AS (
    SELECT * FROM bench.pool WHERE n = (SELECT nextval('bench.next'))
), up AS (
    INSERT INTO saml_jit.users AS u (idp_id, subject, name_id, email, attributes, last_login_at, login_count)
    SELECT 1, p.subject, p.subject, p.email, p.attributes, now(), 1 FROM p
    ON CONFLICT (idp_id, subject) DO UPDATE
       SET email = EXCLUDED.email, attributes = EXCLUDED.attributes, last_login_at = now(),
           login_count = u.login_count + 1
    RETURNING u.id, (u.xmax = 0) AS created, u AS row
), consumed AS (
    INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until)
    SELECT 1, 'writes-' || p.n, now() + interval '1 hour' FROM p
), session AS (
    INSERT INTO saml_jit.session (id, user_id, idp_id, name_id)
    SELECT gen_random_uuid(), up.id, 1, p.subject FROM up, p
)
INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject, detail)
SELECT e.event, 1, up.id, p.subject, e.detail
  FROM up, p CROSS JOIN LATERAL (VALUES
         (1, 'login', '{"response_signed": false}'::jsonb),
         (2, 'created', jsonb_build_object('user', to_jsonb(up.row) - 'attributes'))) AS e(ord, event, detail)
 WHERE e.ord = 1 OR up.created;
