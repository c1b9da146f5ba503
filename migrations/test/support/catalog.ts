import pg from 'pg';

/**
 * Privileges equal to the defaults (owner only) print as NULL however they came about: a GRANT
 * and its REVOKE leave an explicit ACL that means the same.
 *
 * A comparable description of a schema from the catalogs (there is no pg_dump for PostgreSQL 17
 * here): relations with their columns, constraints, indexes, policies, RLS flags, options and
 * privileges; functions; the schema's owner and privileges. Names of the given schema and
 * roles are replaced by placeholders, so two tenants' schemas can be compared.
 */
export async function catalogDump(
  url: string,
  schema: string,
  replace: Record<string, string> = {},
): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("SET search_path = 'pg_catalog'");
    const queries: Record<string, string> = {
      schema: `SELECT pg_get_userbyid(nspowner) AS owner,
                      NULLIF(nspacl::text, acldefault('n'::"char", nspowner)::text) AS acl
                 FROM pg_namespace WHERE nspname = $1`,
      relations: `SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner,
                         c.relrowsecurity, c.relforcerowsecurity, c.reloptions,
                         NULLIF(c.relacl::text, acldefault(
                           CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                           c.relowner)::text) AS acl
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = $1 ORDER BY c.relname`,
      columns: `SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
                       a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default,
                       a.attacl::text AS acl
                  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY c.relname, a.attnum`,
      constraints: `SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) AS def
                      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 ORDER BY c.relname, k.conname`,
      indexes: `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY 1`,
      policies: `SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check
                   FROM pg_policies WHERE schemaname = $1 ORDER BY 1, 2`,
      functions: `SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
                         pg_get_functiondef(p.oid) AS def,
                         NULLIF(p.proacl::text, acldefault('f'::"char", p.proowner)::text) AS acl,
                         obj_description(p.oid, 'pg_proc') AS comment
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = $1 ORDER BY 1, 2`,
      triggers: `SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
                   JOIN pg_class c ON c.oid = t.tgrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY 1`,
    };
    const dump: Record<string, unknown[]> = {};
    for (const [name, sql] of Object.entries(queries)) {
      dump[name] = (await client.query(sql, [schema])).rows;
    }
    let text = JSON.stringify(dump, null, 1);
    for (const [from, to] of Object.entries({ [schema]: '<schema>', ...replace })) {
      text = text.replaceAll(from, to);
    }
    return text;
  } finally {
    await client.end();
  }
}
