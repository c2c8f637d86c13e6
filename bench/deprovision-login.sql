-- What a login does to a user row that deprovisioning also wants: lock and
-- update it. Picks one of the 100,000 due users at random.
\set id random(1, 100000)
UPDATE saml_jit.users SET last_login_at = now(), login_count = login_count + 1
 WHERE idp_id = 1 AND subject = 'u' || :id;
