-- The floor: the same pool row fetched and the same user row (with its
-- attributes jsonb) upserted, with no SAML work at all.
INSERT INTO saml_jit.users AS u (idp_id, subject, name_id, email, attributes, last_login_at, login_count)
SELECT 1, p.subject, p.subject, p.email, p.attributes, now(), 1 FROM bench.pool p WHERE p.n = (SELECT nextval('bench.next'))
ON CONFLICT (idp_id, subject) DO UPDATE
   SET email = EXCLUDED.email, attributes = EXCLUDED.attributes, last_login_at = now(),
       login_count = u.login_count + 1;
