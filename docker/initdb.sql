-- Runs once when the container's database is first created.
CREATE EXTENSION IF NOT EXISTS saml_jit;
CREATE EXTENSION IF NOT EXISTS pg_cron;   -- cron.database_name = app in compose.yaml
SELECT cron.schedule('saml_jit-deprovision', '*/5 * * * *', 'CALL saml_jit_deprovision_expired_committing()');
