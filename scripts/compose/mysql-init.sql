-- First-start initialisation of the demo MySQL in docker-compose.yaml (mounted into
-- /docker-entrypoint-initdb.d, so it runs once, as root, on an empty data volume; run
-- `docker compose down -v` to start over).
--
-- It only creates the two fixed databases and the pipeline's user. The admin tables, the demo rows,
-- the source tables and the per-company target schemas are created by `report-pipeline init-admin`
-- and `report-pipeline demo-setup` (run by the airflow-init service), so that they have one definition.

CREATE DATABASE IF NOT EXISTS `reports_admin` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE DATABASE IF NOT EXISTS `source` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;

-- docker-compose.yaml has the image create this user first (MYSQL_USER/MYSQL_PASSWORD, password
-- from REPORTS_MYSQL_PASSWORD); this line is the fallback when the file is used without them.
CREATE USER IF NOT EXISTS 'reports'@'%' IDENTIFIED BY 'rp-demo-7Kq2';

-- reports_admin_db and reports_source_db: init-admin and demo-setup create and fill their tables.
GRANT ALL PRIVILEGES ON `reports_admin`.* TO 'reports'@'%';
GRANT ALL PRIVILEGES ON `source`.* TO 'reports'@'%';

-- reports_target_db: one schema per company, named from REPORTS_TARGET_SCHEMA_TEMPLATE (default
-- "{alias}"), so the names are not known here and CREATE must be global. The rest is what the load
-- needs: LOAD DATA LOCAL (INSERT; no FILE privilege, the file is sent by the client), upserts
-- (DELETE, UPDATE), swap loads through a shadow table and RENAME TABLE (CREATE, DROP, ALTER), and
-- the report_loads status table. Demo only: on a real server grant these per company schema.
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES,
      CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW
   ON *.* TO 'reports'@'%';
