"""Qt widgets of the plugin (dock panel, dialogs, canvas preview); they drive the Processing algorithms."""
