# Turns default.conf into a C string constant (conf_default_text).
file(READ ${IN} text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
string(REPLACE "\n" "\\n\"\n\"" text "${text}")
file(WRITE ${OUT} "/* generated from default.conf */\nconst char conf_default_text[] = \"${text}\";\n")
