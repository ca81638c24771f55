#!/bin/sh
# Starts slapd for vmaild's docker compose. On the first start (no config in
# the state folder) it writes a cn=config with the core, cosine,
# inetorgperson and vmaild schemas and one mdb database for $LDAP_SUFFIX
# whose rootdn is cn=admin,$LDAP_SUFFIX, then loads the seed LDIF files and a
# service account cn=vmaild,$LDAP_SUFFIX with slapadd. Nothing else is
# created: the seed files bring the base entry and ou=people themselves
# (ldif/example.ldif does), so nothing is added twice. Later starts use what
# the volume holds and ignore the variables below, except LDAP_URLS.
#
# The seed files are public, and so are the passwords of their example
# accounts: their userPassword values are not loaded, so no account of a
# new directory has a password anyone knows until `vmaild user passwd`
# sets one. The passwords below must not be .env.example's placeholder.
#
#   LDAP_SUFFIX           base DN (dc=example,dc=com)
#   LDAP_ADMIN_PASSWORD   password of the rootdn cn=admin,$LDAP_SUFFIX
#   LDAP_VMAILD_PASSWORD  password of cn=vmaild,$LDAP_SUFFIX, the account vmaild binds as
#   LDAP_SEED_FILES       files in $LDAP_LDIF_DIR loaded in this order; empty: only
#                         the base entry and ou=people
#
# The paths are variables too so the script can be tried outside a container.
set -eu

: "${LDAP_SUFFIX:=dc=example,dc=com}"
: "${LDAP_ADMIN_PASSWORD:?set LDAP_ADMIN_PASSWORD}"
: "${LDAP_VMAILD_PASSWORD:?set LDAP_VMAILD_PASSWORD}"
: "${LDAP_SEED_FILES:=}"
: "${LDAP_SCHEMA_DIR:=/vmaild/schema}"
: "${LDAP_LDIF_DIR:=/vmaild/ldif}"
: "${LDAP_STATE_DIR:=/var/lib/openldap}"
: "${LDAP_URLS:=ldap:/// ldapi:///}"
: "${LDAP_USER:=openldap}"
: "${LDAP_LOG_LEVEL:=0}"
: "${LDAP_MODULE_DIR:=/usr/lib/ldap}"
: "${LDAP_SYSTEM_SCHEMA_DIR:=/etc/ldap/schema}"
: "${LDAP_RUN_DIR:=/run/slapd}"

for var in LDAP_ADMIN_PASSWORD LDAP_VMAILD_PASSWORD; do
	eval "value=\$$var"
	case "$value" in
	change-me*)
		echo "openldap: $var is still the placeholder of .env.example; run deploy/compose/init-env.sh or set it in .env" >&2
		exit 1
		;;
	esac
done

config="$LDAP_STATE_DIR/config"
data="$LDAP_STATE_DIR/data"
service="cn=vmaild,$LDAP_SUFFIX"
people="ou=people,$LDAP_SUFFIX"

# without_passwords copies an LDIF file without its userPassword values
# (their continuation lines included).
without_passwords() {
	awk '
		skip && /^ / { next }
		{ skip = 0 }
		tolower($0) ~ /^userpassword(;[^:]*)?:/ { skip = 1; next }
		{ print }
	' "$1"
}

initialise() {
	echo "openldap: first start: creating $LDAP_SUFFIX in $LDAP_STATE_DIR"
	# A half-made directory would be taken for a finished one next time.
	trap 'rm -rf "$config" "$data"' EXIT
	mkdir -p "$config" "$data"
	tmp=$(mktemp -d)
	root_hash=$(slappasswd -h '{SSHA}' -s "$LDAP_ADMIN_PASSWORD")
	service_hash=$(slappasswd -h '{SSHA}' -s "$LDAP_VMAILD_PASSWORD")

	cat >"$tmp/config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $LDAP_STATE_DIR/slapd.pid
olcArgsFile: $LDAP_STATE_DIR/slapd.args

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $LDAP_MODULE_DIR
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$LDAP_SYSTEM_SCHEMA_DIR/core.ldif

include: file://$LDAP_SYSTEM_SCHEMA_DIR/cosine.ldif

include: file://$LDAP_SYSTEM_SCHEMA_DIR/inetorgperson.ldif

include: file://$LDAP_SCHEMA_DIR/vmaild.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $data
olcSuffix: $LDAP_SUFFIX
olcRootDN: cn=admin,$LDAP_SUFFIX
olcRootPW: $root_hash
olcDbMaxSize: 1073741824
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: mail eq
olcAccess: {0}to attrs=userPassword by dn.exact="$service" write by self write by anonymous auth by * none
olcAccess: {1}to dn.subtree="$people" by dn.exact="$service" write by users read by * none
olcAccess: {2}to * by users read by * none
LDIF
	slapadd -n0 -F "$config" -l "$tmp/config.ldif"

	: >"$tmp/data.ldif"
	if [ -z "$LDAP_SEED_FILES" ]; then
		rdn=${LDAP_SUFFIX%%,*}
		cat >>"$tmp/data.ldif" <<LDIF
dn: $LDAP_SUFFIX
objectClass: top
objectClass: dcObject
objectClass: organization
dc: ${rdn#*=}
o: ${rdn#*=}

dn: $people
objectClass: top
objectClass: organizationalUnit
ou: people

LDIF
	fi
	for f in $LDAP_SEED_FILES; do
		echo "openldap: loading $f"
		without_passwords "$LDAP_LDIF_DIR/$f" >>"$tmp/data.ldif"
		printf '\n' >>"$tmp/data.ldif"
	done
	cat >>"$tmp/data.ldif" <<LDIF
dn: $service
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: vmaild
description: vmaild's service account: reads and writes accounts under $people
userPassword: $service_hash
LDIF
	slapadd -n1 -F "$config" -l "$tmp/data.ldif"
	rm -rf "$tmp"
	chown -R "$LDAP_USER:$LDAP_USER" "$LDAP_STATE_DIR"
	trap - EXIT
}

if [ ! -d "$config" ]; then
	initialise
fi
# ldapi:/// lets `docker compose exec openldap ldapmodify -Y EXTERNAL -H ldapi:///`
# change cn=config as root.
install -d -o "$LDAP_USER" -g "$LDAP_USER" "$LDAP_RUN_DIR"
exec slapd -d "$LDAP_LOG_LEVEL" -F "$config" -h "$LDAP_URLS" -u "$LDAP_USER" -g "$LDAP_USER"
