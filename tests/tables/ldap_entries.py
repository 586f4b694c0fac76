"""The directory the ldap: tests search (tests/tables/test_ldap_server.py), as LDIF.

Under dc=example,dc=com: ou=people (and ou=sub below it, for scope), ou=domains with one
ou per domain (a search_base built from %d), and entries that make postmap and vdeliver
disagree if either gets LDAP wrong: several values, several entries for one key, keys with
filter and DN metacharacters, UTF-8, attribute subtypes (maildrop;lang-de), attributes in
another order than result_attribute lists them, an entry without the result attribute.
"""

PEOPLE = "ou=people,dc=example,dc=com"
DOMAINS = "ou=domains,dc=example,dc=com"
BIND_DN, BIND_PW = f"uid=reader,{PEOPLE}", "reader-Pa55"


def person(uid, ids, maildrops=(), base=PEOPLE, extra=()):
    lines = [f"dn: uid={uid},{base}", "objectClass: inetOrgPerson",
             "objectClass: postfixRecipient", f"uid: {uid}", f"cn: {uid}", f"sn: {uid}"]
    lines += [f"mailacceptinggeneralid: {value}" for value in ids]
    lines += [f"maildrop: {value}" for value in maildrops]
    lines += list(extra)
    return "\n".join(lines) + "\n\n"


def ldif():
    out = [f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n",
           f"dn: ou=sub,{PEOPLE}\nobjectClass: organizationalUnit\nou: sub\n\n",
           f"dn: {DOMAINS}\nobjectClass: organizationalUnit\nou: domains\n\n"]
    out.append(person("bob", ["bob@example.com"], ["example.com/bob/"],
                      extra=["mail: bob@example.net"]))
    out.append(person("alice", ["alice@example.com", "alice+list@example.com"],
                      ["example.com/alice/"]))
    out.append(person("mixed", ["Mixed@Example.COM"], ["example.com/Mixed/"]))
    out.append(person("multi", ["multi@example.com"], ["multi-a/", "multi-b/", "multi-c/"]))
    for number in range(3):
        out.append(person(f"shared{number}", ["shared@example.com", "big@example.com"][:2 - (number == 2)],
                          [f"shared{number}/"]))
    out.append(person("catchall", ["@example.org"], ["example.org/catchall/"]))
    out.append(person("star", ["star*@example.com"], ["example.com/star/"]))
    out.append(person("paren", ["paren(x)@example.com"], ["example.com/paren/"]))
    out.append(person("backslash", ["back\\slash@example.com"], ["example.com/backslash/"]))
    out.append(person("nulish", ["\\00@example.com"], ["example.com/nulish/"]))
    out.append(person("jose", ["jösé@exämple.com"], ["exämple.com/jösé/"]))
    out.append(person("nodrop", ["nodrop@example.com"]))
    out.append(person("forward", ["forward@example.com"],
                      ["someone@example.net", "other@example.org", "no-at-sign"]))
    out.append(person("tagged", ["tagged@example.com"], ["tagged/"],
                      extra=["maildrop;lang-de: tagged-de/"]))
    # mail before maildrop in the entry: the server returns them in its own order
    out.append("dn: uid=order,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n"
               "objectClass: postfixRecipient\nuid: order\ncn: order\nsn: order\n"
               "mail: order-mail@example.com\nmailacceptinggeneralid: order@example.com\n"
               "maildrop: order-drop/\n\n")
    out.append(person("deep", ["deep@example.com"], ["example.com/deep/"], base=f"ou=sub,{PEOPLE}"))
    out.append(person("reader", [], extra=[f"userPassword: {BIND_PW}"]))
    for domain in ("example.com", "example.net", "a,b.example", "a+b.example"):
        escaped = domain.replace(",", "\\,").replace("+", "\\+")
        base = f"ou={escaped},{DOMAINS}"
        out.append(f"dn: {base}\nobjectClass: organizationalUnit\nou: {domain}\n\n")
        out.append(person("postmaster", [f"postmaster@{domain}"], [f"{domain}/postmaster/"],
                          base=base))
    return "".join(out)
