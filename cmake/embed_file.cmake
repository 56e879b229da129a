# Writes OUT, a C++ file defining llmforge::serve::kWebPage as the bytes of IN (the chat page),
# so the server binary needs no files beside it. Hex bytes, not a raw string: the page may hold
# any delimiter.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" body "${body}")
file(WRITE ${OUT} "// Generated from ${IN} by cmake/embed_file.cmake; do not edit.\n#include <cstddef>\nnamespace llmforge::serve {\nextern const unsigned char kWebPage[];\nextern const size_t kWebPageSize;\nconst unsigned char kWebPage[] = {\n${body}0};\nconst size_t kWebPageSize = ${bytes};\n}  // namespace llmforge::serve\n")
