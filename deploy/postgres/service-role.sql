-- One service's role and database: the role logs in with its own password, owns its
-- database (so it runs its own migrations there) and nothing else; no other role may
-- connect to that database. The superuser only runs this, never the services.
--
-- psql variables: role (also the database's name) and password. init.sh runs it once per
-- service when the compose PostgreSQL initialises its data directory;
-- tests/system/least_privilege.rs runs the same statements for a test's own roles.
create role :"role" login password :'password';
create database :"role" owner :"role";
revoke connect, temporary on database :"role" from public;
