use super::*;

#[test]
fn parses_prefix_params_and_trailing() {
    let m = parse(":nick!u@h PRIVMSG #lobby :hello  there :)").unwrap();
    assert_eq!(m.prefix, Some("nick!u@h"));
    assert_eq!(m.command, "PRIVMSG");
    assert_eq!(m.params, ["#lobby", "hello  there :)"]);
    let m = parse("USER guest 0 * :Real Name").unwrap();
    assert_eq!(m.params, ["guest", "0", "*", "Real Name"]);
    let m = parse("@time=x;y=z  JOIN   #a,#b  ").unwrap();
    assert_eq!((m.command, m.params), ("JOIN", vec!["#a,#b"]));
    let m = parse("PRIVMSG #x :").unwrap();
    assert_eq!(m.params, ["#x", ""]);
    assert_eq!(parse(""), None);
    assert_eq!(parse("   "), None);
    assert_eq!(parse(":onlyprefix"), None);
    let many = format!(
        "CMD {}",
        (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
    );
    let m = parse(&many).unwrap();
    assert_eq!(m.params.len(), 15);
    assert_eq!(m.params[14], "14 15 16 17 18 19");
}
