-- One login through saml_jit: the next unused response of the pool.
SELECT count(*) FROM saml_jit_login((SELECT response FROM bench.pool WHERE n = (SELECT nextval('bench.next'))));
