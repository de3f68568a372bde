# Warnings are errors everywhere in the project.
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
                    -Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter
                    -fstack-protector-strong)
