"""The language's grammar (cnn.lark), shipped inside the package as cnndsl.grammars."""
