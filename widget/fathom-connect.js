// The connect widget: <fathom-connect> and fathomConnect() (the next commit fills it in).
